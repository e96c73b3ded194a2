using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using WasteClassifier.Api.Extensions;
using WasteClassifier.IntegrationTests.Fixtures;

namespace WasteClassifier.IntegrationTests.Embedded;

/// <summary>What the web interface reads from the API: content negotiation at /, static files, time series.</summary>
[Collection(EmbeddedCollection.Name)]
public sealed class WebInterfaceAndMetricsTests(EmbeddedApiFixture fixture)
{
    [Fact]
    public async Task Index_BrowserAcceptHeader_ServesTheWebInterfaceAndItsModules()
    {
        var page = await GetAsync("/", "text/html,application/xhtml+xml,*/*;q=0.8");
        Assert.Equal(HttpStatusCode.OK, page.StatusCode);
        Assert.Equal("text/html", page.Content.Headers.ContentType?.MediaType);
        Assert.Contains("<title>WasteClassifier</title>", await page.Content.ReadAsStringAsync());
        Assert.Contains("Accept", page.Headers.Vary);

        foreach (var file in new[] { "/js/app.js", "/js/classify.js", "/js/dashboard.js", "/js/charts.js", "/css/app.css" })
            Assert.Equal(HttpStatusCode.OK, (await fixture.Client.Http.GetAsync(file)).StatusCode);
    }

    [Fact]
    public async Task Index_JsonOrAnyAccept_KeepsTheOriginalEndpointList()
    {
        foreach (var accept in new[] { "application/json", "*/*" })
        {
            var response = await GetAsync("/", accept);
            Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
            var body = await ClassifierClient.ReadJsonAsync(response);
            Assert.Equal("WasteClassifier", body["name"]!.GetValue<string>());
            Assert.NotNull(body["endpoints"]!["POST /v1/classifications"]);
        }
    }

    [Fact]
    public async Task Index_Json_ListsEveryMappedRoute()
    {
        // The hand-written list left out uploads, sources, /retrain, labels and the probes.
        var body = await ClassifierClient.ReadJsonAsync(await GetAsync("/", "application/json"));
        var listed = body["endpoints"]!.AsObject();
        foreach (var expected in new[] { "POST /v1/uploads", "POST /v1/uploads/commit", "GET /v1/sources", "GET /v1/sources/{name}/composition",
            "POST /retrain", "PUT /v1/classifications/{id}/label", "GET /health/live", "GET /health/ready", "DELETE /v1/training-jobs/{id}" })
            Assert.True(listed.ContainsKey(expected), $"{expected} is not listed: {string.Join(", ", listed.Select(e => e.Key))}");
        var routes = fixture.Factory.Services.GetRequiredService<EndpointDataSource>().Endpoints.OfType<RouteEndpoint>().ToList();
        Assert.NotEmpty(routes);
        foreach (var route in routes)
            foreach (var method in route.Metadata.GetMetadata<IHttpMethodMetadata>()?.HttpMethods ?? ["GET"])
                Assert.Contains(listed, e => e.Key.StartsWith(method + " /", StringComparison.Ordinal)
                    && Normalize(e.Key[(method.Length + 1)..]) == Normalize(route.Metadata.GetMetadata<DocumentedRoute>()?.Path ?? route.RoutePattern.RawText!));
    }

    /// <summary>A route's text without constraints, catch-all marks or a trailing slash: "/v1/x/{id:guid}/" is "/v1/x/{id}".</summary>
    private static string Normalize(string route) =>
        System.Text.RegularExpressions.Regex.Replace("/" + route.Trim('/'), @"\{\**([^}:=?]+)[^}]*\}", "{$1}");

    [Fact]
    public async Task StatsTimeSeries_AfterClassifications_HasThroughputLatencyAndPerWorkerSeries()
    {
        var ids = await fixture.Client.SubmitFilesAsync(Dataset.Sample(perClass: 1).Take(3).Select(s => s.Path), source: "series-line");
        await fixture.Client.WaitForAllAsync(ids, TimeSpan.FromMinutes(2));

        var series = (await fixture.Client.Http.GetFromJsonAsync<JsonNode>("/stats/timeseries?minutes=10&step_seconds=60"))!;
        var points = series["points"]!.AsArray();
        Assert.Equal(10, points.Count);
        Assert.True(points.Sum(p => p!["completed"]!.GetValue<long>()) >= 3);
        Assert.Contains(points, p => p!["p95_ms"] is not null && p["images_per_second"]!.GetValue<double>() > 0);
        Assert.True(series["completed_per_worker"]!["embedded-worker"]!.AsArray().Sum(v => v!.GetValue<long>()) >= 3);
        Assert.NotEmpty(series["completed_per_model_version"]!.AsObject());

        var stats = (await fixture.Client.Http.GetFromJsonAsync<JsonNode>("/stats"))!;
        Assert.True(stats["class_distribution_by_source"]!["series-line"]!.AsObject().Sum(c => c.Value!.GetValue<long>()) >= 3);
        Assert.NotNull(stats["latency_ms"]!["total"]); // the original fields stay

        var invalid = await fixture.Client.Http.GetAsync("/stats/timeseries?minutes=1440&step_seconds=1");
        Assert.Equal(HttpStatusCode.BadRequest, invalid.StatusCode);
    }

    [Fact]
    public async Task ApiReference_ScalarPage_ServesItsScriptLocally()
    {
        var page = await GetAsync("/scalar/v1", "text/html");
        Assert.Equal(HttpStatusCode.OK, page.StatusCode);
        var html = await page.Content.ReadAsStringAsync();
        Assert.Contains("scalar.js", html);
        Assert.DoesNotContain("cdn.jsdelivr.net", html);
        Assert.Equal(HttpStatusCode.OK, (await fixture.Client.Http.GetAsync("/scalar/scalar.js")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await fixture.Client.Http.GetAsync("/openapi/v1.json")).StatusCode);
    }

    [Fact]
    public async Task OpenApi_SourceComposition_AppearsAsClientsWriteIt()
    {
        // The route is a catch-all (a source name may hold '/'): the document showed GET /v1/sources/{path}.
        var paths = (await fixture.Client.Http.GetFromJsonAsync<JsonNode>("/openapi/v1.json"))!["paths"]!.AsObject();
        Assert.False(paths.ContainsKey("/v1/sources/{path}"));
        var parameters = paths["/v1/sources/{name}/composition"]!["get"]!["parameters"]!.AsArray();
        Assert.Contains(parameters, p => p!["name"]!.GetValue<string>() == "name" && p["in"]!.GetValue<string>() == "path");
        Assert.DoesNotContain(parameters, p => p!["name"]!.GetValue<string>() == "path");
    }

    [Fact]
    public async Task OpenApi_Times_AreDateTimeStrings()
    {
        // The converters that write times with Z left their schemas without a type.
        var schemas = (await fixture.Client.Http.GetFromJsonAsync<JsonNode>("/openapi/v1.json"))!["components"]!["schemas"]!;
        var generatedAt = schemas["ServiceStats"]!["properties"]!["generated_at"]!;
        Assert.Equal(("string", "date-time"), (generatedAt["type"]!.GetValue<string>(), generatedAt["format"]!.GetValue<string>()));
        var lastCompletedAt = schemas["ModelStats"]!["properties"]!["last_completed_at"]!;
        Assert.Equal(["null", "string"], lastCompletedAt["type"]!.AsArray().Select(t => t!.GetValue<string>()).Order());
    }

    private Task<HttpResponseMessage> GetAsync(string path, string accept)
    {
        var request = new HttpRequestMessage(HttpMethod.Get, path);
        request.Headers.Accept.ParseAdd(accept);
        return fixture.Client.Http.SendAsync(request);
    }

    /// <summary>The value of one sample line ("name{labels} value") in Prometheus text; 0 when absent.</summary>
}
