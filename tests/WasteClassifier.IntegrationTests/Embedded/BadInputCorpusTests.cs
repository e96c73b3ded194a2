using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using WasteClassifier.Infrastructure.Persistence;
using WasteClassifier.IntegrationTests.Fixtures;

namespace WasteClassifier.IntegrationTests.Embedded;

/// <summary>
/// The generated bad-input corpus through the API and straight through the queue: every file is refused with a code or
/// ends completed/failed with a reason; good images in the same batch complete; the worker keeps working; memory stays bounded.
/// </summary>
[Collection(EmbeddedCollection.Name)]
public sealed class BadInputCorpusTests(EmbeddedApiFixture fixture)
{
    public static TheoryData<string> Entries => new(BadImageCorpus.Create().Select(e => e.Name));

    [Theory]
    [MemberData(nameof(Entries))]
    public async Task Api_CorpusFile_RefusedWithCodeOrFinishedWithReason(string name)
    {
        var entry = BadImageCorpus.Create().Single(e => e.Name == name);
        using var form = new MultipartFormDataContent();
        var part = new ByteArrayContent(entry.Content);
        part.Headers.ContentType = new MediaTypeHeaderValue(entry.ContentType);
        form.Add(part, "image", entry.FileName);
        var response = await fixture.Client.Http.PostAsync("/v1/classifications", form);
        var body = await ClassifierClient.ReadJsonAsync(response);

        if (entry.RefusedWith is not null)
        {
            Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
            Assert.True(entry.RefusedWith == body["error"]!.GetValue<string>(), body.ToJsonString());
            Assert.False(string.IsNullOrWhiteSpace(body["message"]!.GetValue<string>()));
            return;
        }
        Assert.True(response.StatusCode == HttpStatusCode.Accepted, body.ToJsonString());
        var id = Guid.Parse(body["items"]![0]!["id"]!.GetValue<string>());
        var row = (await fixture.Client.WaitForAllAsync([id], TimeSpan.FromMinutes(1)))[0];
        var status = row["status"]!.GetValue<string>();
        Assert.Contains(status, new[] { "completed", "failed" });
        if (status == "failed")
        {
            Assert.False(string.IsNullOrWhiteSpace(row["error_code"]?.GetValue<string>()));
            Assert.False(string.IsNullOrWhiteSpace(row["error"]?.GetValue<string>()));
        }
        else Assert.NotNull(row["predicted_class"]?.GetValue<string>());
    }

    [Fact]
    public async Task Queue_WholeCorpusInOneBatchWithGoodImages_GoodOnesCompleteBadOnesFailWithReasons()
    {
        var corpus = BadImageCorpus.Create().Where(e => e.Content.Length > 0).ToList();
        var good = Dataset.Sample(perClass: 1).Take(3).Select(s => File.ReadAllBytes(s.Path)).ToList();
        var objects = good.Select(g => ($"test/{Guid.NewGuid():N}", (byte[]?)g))
            .Concat(corpus.Select(e => ($"test/{Guid.NewGuid():N}", (byte[]?)e.Content))).ToList();
        var memoryBefore = ManagedAfterCollection();

        var ids = await WorkerBatchTests.RecordAsync(fixture, objects, send: true);
        var results = await fixture.Client.WaitForAllAsync(ids, TimeSpan.FromMinutes(2));

        Assert.All(results.Take(3), r => Assert.Equal("completed", r["status"]!.GetValue<string>()));
        foreach (var (entry, row) in corpus.Zip(results.Skip(3)))
        {
            var status = row["status"]!.GetValue<string>();
            if (entry.WorkerFailsWith is not null) Assert.Equal(entry.WorkerFailsWith, row["error_code"]?.GetValue<string>());
            if (entry.RefusedWith is "not_an_image" or "empty_file") Assert.Equal("failed", status);
            if (status == "failed") Assert.False(string.IsNullOrWhiteSpace(row["error"]?.GetValue<string>()), entry.Name);
        }
        // The worker is still up: a good image sent afterwards completes.
        var after = await WorkerBatchTests.RecordAsync(fixture, [($"test/{Guid.NewGuid():N}", good[0])], send: true);
        Assert.Equal("completed", (await fixture.Client.WaitForAllAsync(after, TimeSpan.FromMinutes(1)))[0]["status"]!.GetValue<string>());
        // Bounded: decoding the corpus retains nothing big (the budget is one 40 MP decode, not frames × canvas).
        Assert.True(ManagedAfterCollection() - memoryBefore < 200L * 1024 * 1024, "managed memory grew by more than 200 MB");
        Assert.True(Process.GetCurrentProcess().PeakWorkingSet64 < 4L * 1024 * 1024 * 1024, "peak working set over 4 GB");
    }

    [Fact]
    public async Task Api_HostileFileNames_StoredSanitised()
    {
        var image = File.ReadAllBytes(Dataset.Sample(perClass: 1)[2].Path);
        string[] names = ["../../etc/passwd.jpg", "..\\..\\windows\\system32\\evil.jpg", "tab\tand\u0001ctrl\u007f.jpg", "/abs/path/x.jpg", "....jpg"];
        var (response, body) = await fixture.Client.SubmitAsync(names.Select(n => (n, image)));
        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        var returned = body["items"]!.AsArray().Select(i => i!["filename"]?.GetValue<string>()).ToList();
        Assert.Equal(["passwd.jpg", "evil.jpg", "tabandctrl.jpg", "x.jpg", "jpg"], returned);

        using var scope = fixture.Factory.Services.CreateScope();
        var db = scope.ServiceProvider.GetRequiredService<ClassifierDbContext>();
        var ids = body["items"]!.AsArray().Select(i => Guid.Parse(i!["id"]!.GetValue<string>())).ToList();
        var rows = await db.Classifications.Include(c => c.Image).Where(c => ids.Contains(c.Id)).ToListAsync();
        Assert.All(rows, r =>
        {
            Assert.StartsWith("sha256/", r.Image!.ObjectKey); // the object key is the content hash, never the client's name
            Assert.DoesNotContain('/', r.Image.FileName ?? "");
            Assert.DoesNotContain('\\', r.Image.FileName ?? "");
            Assert.DoesNotContain((r.Image.FileName ?? "").ToCharArray(), char.IsControl);
        });
    }

    [Fact]
    public async Task Api_AThousandFilesInOneRequest_400TooManyFilesNothingStored()
    {
        var tiny = new byte[16];
        var (response, body) = await fixture.Client.SubmitAsync(Enumerable.Range(0, 1000).Select(i => ($"{i}.jpg", tiny)));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("too_many_files", body["error"]!.GetValue<string>());
    }

    private static long ManagedAfterCollection()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        return GC.GetTotalMemory(forceFullCollection: true);
    }
}
