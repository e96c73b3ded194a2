using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using WasteClassifier.IntegrationTests.Fixtures;
using WasteClassifier.Testing;

namespace WasteClassifier.IntegrationTests.Ingestion;

/// <summary>Duplicate frames within a source's window, and the per-source list and composition (JSON and CSV), embedded.</summary>
[Collection(IngestionCollection.Name)]
public sealed class DuplicatesAndSourcesTests(IngestionFixture fixture)
{
    private ClassifierClient Client => fixture.Client;

    [Fact]
    public async Task Submit_SameFrameAgainWithinWindow_RecordedAsDuplicateWithTheEarlierResult()
    {
        var sample = Dataset.Sample(1);
        var frame = (Path.GetFileName(sample[6].Path), File.ReadAllBytes(sample[6].Path));
        var other = (Path.GetFileName(sample[7].Path), File.ReadAllBytes(sample[7].Path));

        // The same bytes twice in one request, then again later; a different frame; the same bytes from another source.
        var (_, firstBody) = await Client.SubmitAsync([frame, frame, other], IngestionFixture.DuplicateSource);
        var first = firstBody["items"]!.AsArray().Select(i => Guid.Parse(i!["id"]!.GetValue<string>())).ToList();
        var (_, laterBody) = await Client.SubmitAsync([frame], IngestionFixture.DuplicateSource);
        var later = Guid.Parse(laterBody["items"]![0]!["id"]!.GetValue<string>());
        var (_, elsewhereBody) = await Client.SubmitAsync([frame], "dup-elsewhere");
        var elsewhere = Guid.Parse(elsewhereBody["items"]![0]!["id"]!.GetValue<string>());

        var results = await Client.WaitForAllAsync([.. first, later, elsewhere], TimeSpan.FromSeconds(60));
        var (original, inRequest, differentFrame, again, otherSource) = (results[0], results[1], results[2], results[3], results[4]);
        Assert.All(results, r => Assert.Equal("completed", r["status"]!.GetValue<string>()));
        Assert.Null(original["duplicate_of"]);
        Assert.Null(differentFrame["duplicate_of"]);
        Assert.Null(otherSource["duplicate_of"]);
        foreach (var duplicate in new[] { inRequest, again })
        {
            Assert.Equal(first[0].ToString(), duplicate["duplicate_of"]!.GetValue<string>());
            Assert.Equal(original["predicted_class"]!.GetValue<string>(), duplicate["predicted_class"]!.GetValue<string>());
            Assert.Equal(original["confidence"]!.GetValue<double>(), duplicate["confidence"]!.GetValue<double>());
            Assert.Null(duplicate["worker_id"]); // nothing ran for it
        }

        var row = await IngestionFixture.WaitForSourceAsync(Client.Http, IngestionFixture.DuplicateSource, 4, TimeSpan.FromSeconds(30));
        Assert.Equal(2, row["duplicates"]!.GetValue<long>());
    }

    [Fact]
    public async Task Submit_SameBytesFromTwoLines_EachShowsItsOwnFileName()
    {
        // The image row is shared by every upload of the same bytes: its name is the first upload's, not line-1's.
        var bytes = File.ReadAllBytes(Dataset.Sample(2)[11].Path);
        var (_, secondLine) = await Client.SubmitAsync([("from-line-2.jpg", bytes)], "names-line-2");
        var key = $"names-{Guid.NewGuid():N}";
        var (_, firstLine) = await Client.SubmitAsync([("from-line-1.jpg", bytes)], "names-line-1", idempotencyKey: key);
        var direct = await DirectUploadFlow.RunAsync(Client.Http, Client.Http, [("direct-line-3.jpg", bytes)], "names-line-3");
        var ids = new[] { secondLine, firstLine }.Select(b => Guid.Parse(b["items"]![0]!["id"]!.GetValue<string>())).Append(direct.ClassificationIds[0]).ToList();
        await Client.WaitForAllAsync(ids, TimeSpan.FromSeconds(60));

        Assert.Equal("from-line-1.jpg", (await Client.GetAsync(ids[1]))["filename"]!.GetValue<string>());
        Assert.Equal("direct-line-3.jpg", (await Client.GetAsync(ids[2]))["filename"]!.GetValue<string>());
        foreach (var (source, name) in new[] { ("names-line-1", "from-line-1.jpg"), ("names-line-2", "from-line-2.jpg"), ("names-line-3", "direct-line-3.jpg") })
        {
            var items = (await Client.Http.GetFromJsonAsync<JsonNode>($"/v1/classifications?source={source}"))!["items"]!.AsArray();
            Assert.Equal([name], items.Select(i => i!["filename"]!.GetValue<string>()));
        }
        // A replay answers with the names its own request recorded.
        var (_, replay) = await Client.SubmitAsync([("from-line-1.jpg", bytes)], "names-line-1", idempotencyKey: key);
        Assert.True(replay["replayed"]!.GetValue<bool>());
        Assert.Equal("from-line-1.jpg", replay["items"]![0]!["filename"]!.GetValue<string>());
    }

    [Fact]
    public async Task Sources_ListAndComposition_AddUpAsJsonAndCsv()
    {
        const string source = "line/7:left";
        var sample = Dataset.Sample(2);
        var ids = await Client.SubmitFilesAsync(sample.Take(12).Select(s => s.Path), source);
        await Client.WaitForAllAsync(ids, TimeSpan.FromSeconds(60));

        var list = (await Client.Http.GetFromJsonAsync<JsonNode>("/v1/sources"))!["sources"]!.AsArray();
        var entry = list.Single(s => s!["name"]!.GetValue<string>() == source)!;
        Assert.Equal(12, entry["total"]!.GetValue<long>());
        Assert.Equal(12, entry["completed"]!.GetValue<long>());
        Assert.True(DateTimeOffset.Parse(entry["first_seen"]!.GetValue<string>()) <= DateTimeOffset.Parse(entry["last_seen"]!.GetValue<string>()));

        var sourcesCsv = await Client.Http.GetStringAsync("/v1/sources?format=csv");
        Assert.StartsWith("name,total,queued,processing,completed,failed,duplicates,first_seen,last_seen\n", sourcesCsv);
        Assert.Contains($"\n{source},12,0,0,12,0,0,", sourcesCsv);

        var from = Uri.EscapeDataString(DateTimeOffset.UtcNow.AddHours(-1).ToString("O"));
        var json = (await Client.Http.GetFromJsonAsync<JsonNode>($"/v1/sources/{source}/composition?from={from}&bucket=minute"))!;
        Assert.Equal("minute", json["bucket"]!.GetValue<string>());
        Assert.Equal(12, json["overall"]!["classified"]!.GetValue<long>());
        var perClass = json["overall"]!["classes"]!.AsObject();
        Assert.Equal(12, perClass.Sum(c => c.Value!["count"]!.GetValue<long>()));
        Assert.Equal(1.0, perClass.Sum(c => c.Value!["share"]!.GetValue<double>()), 3);
        foreach (var bucket in json["buckets"]!.AsArray())
            Assert.Equal(bucket!["classified"]!.GetValue<long>(), bucket["classes"]!.AsObject().Sum(c => c.Value!["count"]!.GetValue<long>()));

        using var request = new HttpRequestMessage(HttpMethod.Get, $"/v1/sources/{source}/composition?bucket=hour");
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("text/csv"));
        var response = await Client.Http.SendAsync(request);
        Assert.Equal("text/csv", response.Content.Headers.ContentType!.MediaType);
        var lines = (await response.Content.ReadAsStringAsync()).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.StartsWith("source,scope,bucket_start,bucket_end,class,count,share,", lines[0]); // the original columns first
        var rows = lines.Skip(1).Select(l => l.Split(',')).ToList();
        Assert.All(rows, r => Assert.Equal(source, r[0]));
        Assert.Equal(12, rows.Where(r => r[1] == "overall").Sum(r => int.Parse(r[5])));
        Assert.Equal(12, rows.Where(r => r[1] == "hour").Sum(r => int.Parse(r[5])));
    }

    [Fact]
    public async Task CompositionCsv_FailedImages_CountedInTheTotalsColumns()
    {
        // A failed image was in no row of the CSV (its rows were per class), and a source with nothing classified had none.
        const string source = "csv-failed-cam";
        var (_, body) = await Client.SubmitAsync([("no-pixels.png", HostileImages.PngHeaderOnly(80, 60)), (Path.GetFileName(Dataset.Manifest[1204].Path), File.ReadAllBytes(Dataset.Manifest[1204].Path))], source);
        var ids = body["items"]!.AsArray().Select(i => Guid.Parse(i!["id"]!.GetValue<string>())).ToList();
        await Client.WaitForAllAsync(ids, TimeSpan.FromSeconds(60));
        const string failedOnly = "csv-failed-only-cam";
        var (_, onlyBody) = await Client.SubmitAsync([("no-pixels.png", HostileImages.PngHeaderOnly(80, 60))], failedOnly);
        await Client.WaitForAllAsync([Guid.Parse(onlyBody["items"]![0]!["id"]!.GetValue<string>())], TimeSpan.FromSeconds(60));

        var lines = (await Client.Http.GetStringAsync($"/v1/sources/{source}/composition?format=csv")).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal("source,scope,bucket_start,bucket_end,class,count,share,total,classified,pending,failed,duplicates", lines[0]);
        // The one class seen, once; of 2 images 1 classified, 1 failed.
        var overall = Assert.Single(lines.Skip(1).Select(l => l.Split(',')), r => r[1] == "overall");
        Assert.Equal("1", overall[5]);
        Assert.Equal(["2", "1", "0", "1", "0"], overall[7..]);

        var only = (await Client.Http.GetStringAsync($"/v1/sources/{failedOnly}/composition?format=csv")).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        var onlyOverall = Assert.Single(only.Skip(1), l => l.Split(',')[1] == "overall").Split(',');
        Assert.Equal(["", "0", "0", "1", "0", "0", "1", "0"], onlyOverall[4..]);
    }

    [Fact]
    public async Task Composition_NameWithSlashPercentEncoded_FindsTheSource()
    {
        // OpenAPI says the name may hold '/': generated clients and Scalar send it as %2F, which reached the name as "%2F" (400).
        const string source = "line/9:right";
        var ids = await Client.SubmitFilesAsync([Dataset.Manifest[1201].Path], source);
        await Client.WaitForAllAsync(ids, TimeSpan.FromSeconds(60));

        var response = await Client.Http.GetAsync($"/v1/sources/{Uri.EscapeDataString(source)}/composition");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var json = await ClassifierClient.ReadJsonAsync(response);
        Assert.Equal(source, json["source"]!.GetValue<string>());
        Assert.Equal(1, json["overall"]!["classified"]!.GetValue<long>());
        // A '%' in the name, once unescaped, is still no source's name.
        await DirectUploadTests.ExpectErrorAsync(await Client.Http.GetAsync("/v1/sources/bad%25name/composition"), HttpStatusCode.BadRequest, "invalid_source");
        // Lower-case hex is the same '/'.
        Assert.Equal(HttpStatusCode.OK, (await Client.Http.GetAsync($"/v1/sources/{Uri.EscapeDataString(source).Replace("%2F", "%2f")}/composition")).StatusCode);
    }

    [Fact]
    public async Task Composition_OnKestrel_NameEncodedTwice_IsDecodedOnceAndRefused()
    {
        // Kestrel decodes the path but %2F; decoding it all again turned %252F into '/' and %252D into '-' (the images sent
        // without a source). Decoded once, each name holds a '%', which no source name does. The in-memory test server
        // gives no raw request target, hence Kestrel.
        var directory = Directory.CreateTempSubdirectory("wc-sources-kestrel-");
        try
        {
            await using var factory = new ApiFactory(new Dictionary<string, string?> { ["DataDirectory"] = directory.FullName });
            factory.UseKestrel(0);
            factory.StartServer();
            var client = new ClassifierClient(factory.CreateClient());
            await client.SubmitFilesAsync([Dataset.Manifest[1202].Path], "line/8:left");
            await client.SubmitFilesAsync([Dataset.Manifest[1203].Path]);

            Assert.Equal(HttpStatusCode.OK, (await client.Http.GetAsync("/v1/sources/line%2F8:left/composition")).StatusCode);
            Assert.Equal(HttpStatusCode.OK, (await client.Http.GetAsync("/v1/sources/line%2f8:left/composition")).StatusCode);
            Assert.Equal(HttpStatusCode.OK, (await client.Http.GetAsync("/v1/sources/-/composition")).StatusCode);
            foreach (var encodedTwice in new[] { "line%252F8:left", "%252D" })
                await DirectUploadTests.ExpectErrorAsync(await client.Http.GetAsync($"/v1/sources/{encodedTwice}/composition"), HttpStatusCode.BadRequest,
                    "invalid_source");
        }
        finally
        {
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            directory.Delete(recursive: true);
        }
    }

    [Fact]
    public async Task Stats_SourceNamedUnspecifiedBesideImagesWithoutSource_CountedApart()
    {
        // "unspecified" was the name /stats gave images without a source: a real source of that name made it a 500 for good.
        var sample = Dataset.Sample(3);
        var named = await Client.SubmitFilesAsync(sample.Take(3).Select(s => s.Path), "unspecified");
        var unnamed = await Client.SubmitFilesAsync(sample.Skip(3).Take(2).Select(s => s.Path));
        await Client.WaitForAllAsync([.. named, .. unnamed], TimeSpan.FromSeconds(60));

        var response = await Client.Http.GetAsync("/stats");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var stats = await ClassifierClient.ReadJsonAsync(response);
        Assert.Equal(3, stats["class_distribution_by_source"]!["unspecified"]!.AsObject().Sum(c => c.Value!.GetValue<long>()));
        Assert.True(stats["class_distribution_without_source"]!.AsObject().Sum(c => c.Value!.GetValue<long>()) >= 2);

        // /v1/sources lists them apart too (JSON: without_source; CSV: the row with no name), and "-" names them in a composition.
        var list = (await Client.Http.GetFromJsonAsync<JsonNode>("/v1/sources"))!;
        Assert.Equal(3, list["sources"]!.AsArray().Single(s => s!["name"]!.GetValue<string>() == "unspecified")!["total"]!.GetValue<long>());
        var withoutSource = list["without_source"]!;
        Assert.Null(withoutSource["name"]);
        Assert.True(withoutSource["completed"]!.GetValue<long>() >= 2);
        Assert.Contains($"\n,{withoutSource["total"]},", await Client.Http.GetStringAsync("/v1/sources?format=csv"));
        var composition = (await Client.Http.GetFromJsonAsync<JsonNode>("/v1/sources/-/composition"))!;
        Assert.Null(composition["source"]);
        Assert.Equal(withoutSource["total"]!.GetValue<long>(), composition["overall"]!["total"]!.GetValue<long>());
        var unspecified = (await Client.Http.GetFromJsonAsync<JsonNode>("/v1/sources/unspecified/composition"))!;
        Assert.Equal(3, unspecified["overall"]!["classified"]!.GetValue<long>());
    }

    [Fact]
    public async Task Composition_BadInput_ClearErrors()
    {
        var ids = await Client.SubmitFilesAsync([Dataset.Manifest[1200].Path], "bad-input-cam");
        await Client.WaitForAllAsync(ids, TimeSpan.FromSeconds(60));
        var http = Client.Http;
        await DirectUploadTests.ExpectErrorAsync(await http.GetAsync("/v1/sources/bad-input-cam/composition?bucket=week"), HttpStatusCode.BadRequest, "invalid_bucket", "minute, hour, day");
        await DirectUploadTests.ExpectErrorAsync(await http.GetAsync("/v1/sources/bad-input-cam/composition?from=yesterday"), HttpStatusCode.BadRequest, "invalid_from", "yesterday");
        await DirectUploadTests.ExpectErrorAsync(await http.GetAsync("/v1/sources/bad-input-cam/composition?to=soon"), HttpStatusCode.BadRequest, "invalid_to");
        // An offset's '+' sent unencoded arrives as a space: the message says to encode it, and %2B works.
        await DirectUploadTests.ExpectErrorAsync(await http.GetAsync("/v1/sources/bad-input-cam/composition?from=2026-11-28T08:00:00+02:00"), HttpStatusCode.BadRequest, "invalid_from", "%2B");
        await DirectUploadTests.ExpectErrorAsync(await http.GetAsync("/v1/sources/bad-input-cam/composition?to=2026-11-28T09:00:00+02:00"), HttpStatusCode.BadRequest, "invalid_to", "%2B");
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/v1/sources/bad-input-cam/composition?from=2026-11-28T08:00:00%2B02:00")).StatusCode);
        await DirectUploadTests.ExpectErrorAsync(await http.GetAsync("/v1/sources/bad-input-cam/composition?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z"), HttpStatusCode.BadRequest, "invalid_range");
        // A from given alone is checked against to's default (now).
        await DirectUploadTests.ExpectErrorAsync(await http.GetAsync("/v1/sources/bad-input-cam/composition?from=2999-01-01T00:00:00Z"), HttpStatusCode.BadRequest, "invalid_range", "2999");
        // Years in minutes (until now, as without from and to on a long history): over the 10,000 buckets one answer may span.
        await DirectUploadTests.ExpectErrorAsync(await http.GetAsync("/v1/sources/bad-input-cam/composition?from=2020-01-01T00:00:00Z&bucket=minute"), HttpStatusCode.BadRequest, "invalid_range", "10,000");
        await DirectUploadTests.ExpectErrorAsync(await http.GetAsync("/v1/sources/bad-input-cam/composition?format=xml"), HttpStatusCode.BadRequest, "invalid_format");
        await DirectUploadTests.ExpectErrorAsync(await http.GetAsync("/v1/sources/no-such-camera/composition"), HttpStatusCode.NotFound, "unknown_source", "no-such-camera");
        await DirectUploadTests.ExpectErrorAsync(await http.GetAsync("/v1/sources/bad-input-cam/whatever"), HttpStatusCode.NotFound, "not_found");
        await DirectUploadTests.ExpectErrorAsync(await http.GetAsync("/v1/sources/bad%20name!/composition"), HttpStatusCode.BadRequest, "invalid_source");
        // A range with nothing in it is an empty report, not an error.
        var empty = (await http.GetFromJsonAsync<JsonNode>("/v1/sources/bad-input-cam/composition?from=2020-01-01T00:00:00Z&to=2020-01-02T00:00:00Z"))!;
        Assert.Equal(0, empty["overall"]!["total"]!.GetValue<long>());
        Assert.Empty(empty["buckets"]!.AsArray());
        // So is a to given alone before the source's first image (a dashboard's window across sources): the default from
        // (that first image) stops at it, rather than making the caller's consistent request a 400.
        var before = (await http.GetFromJsonAsync<JsonNode>("/v1/sources/bad-input-cam/composition?to=2020-01-01T00:00:00Z"))!;
        Assert.Equal(0, before["overall"]!["total"]!.GetValue<long>());
        Assert.Empty(before["buckets"]!.AsArray());
        Assert.Equal(before["to"]!.GetValue<DateTimeOffset>(), before["from"]!.GetValue<DateTimeOffset>());
    }
}
