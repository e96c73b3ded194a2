using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using WasteClassifier.IntegrationTests.Fixtures;
using WasteClassifier.Infrastructure.Persistence;

namespace WasteClassifier.IntegrationTests.Embedded;

/// <summary>Every refusal names the problem, and nothing is stored or queued for a refused file.</summary>
[Collection(EmbeddedCollection.Name)]
public sealed class BadInputTests(EmbeddedApiFixture fixture)
{
    private static readonly byte[] Garbage = Enumerable.Range(0, 5000).Select(i => (byte)(i * 7919 % 251)).ToArray();

    [Fact]
    public async Task Submit_NoFile_400NoFile()
    {
        using var form = new MultipartFormDataContent { { new StringContent("cam-1"), "source" } };
        var (status, body) = await PostAsync("/v1/classifications", form);
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal("no_file", body["error"]!.GetValue<string>());
        Assert.Contains("image", body["message"]!.GetValue<string>());
    }

    [Fact]
    public async Task Submit_NotMultipart_400()
    {
        var response = await fixture.Client.Http.PostAsJsonAsync("/v1/classifications", new { image = "x" });
        var body = await ClassifierClient.ReadJsonAsync(response);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("expected_multipart", body["error"]!.GetValue<string>());
    }

    [Fact]
    public async Task Submit_EmptyUrlEncodedBody_400ExpectedMultipart()
    {
        // curl -d '' (an empty body that curl types url-encoded) was a 400 no_file.
        var (status, body) = await PostAsync("/v1/classifications", new FormUrlEncodedContent([]));
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal("expected_multipart", body["error"]!.GetValue<string>());
        Assert.Contains("multipart/form-data", body["message"]!.GetValue<string>());
    }

    [Theory]
    [InlineData("/v1/classifications", "image", "source", "line-1")]
    [InlineData("/predict", "image", "source", "line-1")]
    [InlineData("/v1/training-jobs", "images", "epochs", "5")]
    [InlineData("/v1/training-jobs", "images", "label", "glass")]
    public async Task Upload_AFieldGivenTwice_400RepeatedFieldNamingIt(string url, string fileField, string field, string value)
    {
        var before = await CountJobsAsync();
        using var form = new MultipartFormDataContent
        {
            { new ByteArrayContent(Garbage), fileField, "a.jpg" },
            { new StringContent(value), field },
            { new StringContent(value), field },
        };
        if (field != "label") form.Add(new StringContent("glass"), "label");

        var (status, body) = await PostAsync(url, form);

        // The values were joined ("line-1,line-1"): a misleading invalid_source, or for a label an unknown "glass,glass".
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal("repeated_field", body["error"]!.GetValue<string>());
        Assert.Contains($"'{field}'", body["message"]!.GetValue<string>());
        Assert.Equal(before, await CountJobsAsync());
    }

    [Theory]
    [InlineData("/v1/classifications?source=line-1&source=line-2", "source")]
    [InlineData("/v1/classifications?limit=5&limit=5", "limit")]
    [InlineData("/v1/samples?label=glass&label=paper", "label")]
    [InlineData("/stats/timeseries?minutes=5&minutes=10", "minutes")]
    public async Task Get_AQueryParameterGivenTwice_400RepeatedParameterNamingIt(string url, string parameter)
    {
        var response = await fixture.Client.Http.GetAsync(url);
        var body = await ClassifierClient.ReadJsonAsync(response);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("repeated_parameter", body["error"]!.GetValue<string>());
        Assert.Contains($"'{parameter}'", body["message"]!.GetValue<string>());
    }

    [Theory]
    [InlineData("", "missing_position")]
    [InlineData("?since=2026-12-01T00:00:00Z&cursor=abc", "missing_position")]
    [InlineData("?since=yesterday", "invalid_since")]
    [InlineData("?cursor=abc", "invalid_cursor")]
    [InlineData("?since=2026-12-01T00:00:00Z&limit=0", "invalid_limit")]
    public async Task Finished_WithoutAValidPosition_400(string query, string error)
    {
        var response = await fixture.Client.Http.GetAsync("/v1/classifications/finished" + query);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal(error, (await ClassifierClient.ReadJsonAsync(response))["error"]!.GetValue<string>());
    }

    [Theory]
    [InlineData("/health")]
    [InlineData("/health/live")]
    [InlineData("/classes")]
    [InlineData("/v1/classifications?limit=1")]
    [InlineData("/v1/models")]
    [InlineData("/openapi/v1.json")]
    public async Task Head_OnAGetRoute_AnswersAsGetDoes(string url)
    {
        var get = await fixture.Client.Http.GetAsync(url);
        var head = await fixture.Client.Http.SendAsync(new HttpRequestMessage(HttpMethod.Head, url));

        // It was a 405 on every route (monitors and load balancers probe with HEAD).
        Assert.Equal(HttpStatusCode.OK, get.StatusCode);
        Assert.Equal(get.StatusCode, head.StatusCode);
        Assert.Equal(get.Content.Headers.ContentType?.MediaType, head.Content.Headers.ContentType?.MediaType);
    }

    [Fact]
    public async Task Options_OnAGetRoute_405JsonNamingGetAndHead()
    {
        var response = await fixture.Client.Http.SendAsync(new HttpRequestMessage(HttpMethod.Options, "/health"));

        Assert.Equal(HttpStatusCode.MethodNotAllowed, response.StatusCode);
        Assert.Equal("method_not_allowed", (await ClassifierClient.ReadJsonAsync(response))["error"]!.GetValue<string>());
        Assert.Equal(["GET", "HEAD"], response.Content.Headers.Allow.Order());
    }

    [Theory]
    [InlineData("empty", "empty_file")]
    [InlineData("garbage", "not_an_image")]
    public async Task Submit_OneBadFile_400NamingTheProblemAndNothingStored(string kind, string error)
    {
        var before = await CountRowsAsync();
        var bytes = kind == "empty" ? [] : Garbage;
        var (response, body) = await fixture.Client.SubmitAsync([("photo.jpg", bytes)]);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal(error, body["error"]!.GetValue<string>());
        Assert.False(string.IsNullOrWhiteSpace(body["message"]!.GetValue<string>()));
        Assert.Equal(before, await CountRowsAsync());
    }

    [Fact]
    public async Task Submit_FileOverTheSizeLimit_413()
    {
        var big = new byte[EmbeddedApiFixture.MaxFileBytes + 1];
        var (response, body) = await fixture.Client.SubmitAsync([("big.jpg", big)]);
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
        Assert.Equal("file_too_large", body["error"]!.GetValue<string>());
    }

    [Fact]
    public async Task Submit_HeaderDeclaresHugeImage_400ImageTooLarge()
    {
        var (response, body) = await fixture.Client.SubmitAsync([("bomb.png", HostileImages.PngHeaderOnly(30000, 30000))]);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("image_too_large", body["error"]!.GetValue<string>());
    }

    [Fact]
    public async Task Submit_MixedFiles_AcceptsTheGoodAndListsTheRefused()
    {
        var good = Dataset.Sample(perClass: 1)[0].Path;
        var (response, body) = await fixture.Client.SubmitAsync([("good.jpg", File.ReadAllBytes(good)), ("../../etc/bad\u0001.jpg", Garbage), ("empty.jpg", [])]);

        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        Assert.Single(body["items"]!.AsArray());
        var rejected = body["rejected"]!.AsArray();
        Assert.Equal([1, 2], rejected.Select(r => r!["index"]!.GetValue<int>()));
        Assert.Equal("bad.jpg", rejected[0]!["filename"]!.GetValue<string>());
        Assert.Equal(["not_an_image", "empty_file"], rejected.Select(r => r!["error"]!.GetValue<string>()));
    }

    [Fact]
    public async Task Submit_TooManyFiles_400()
    {
        var (response, body) = await fixture.Client.SubmitAsync(Enumerable.Range(0, 41).Select(i => ($"{i}.jpg", Garbage)));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("too_many_files", body["error"]!.GetValue<string>());
    }

    [Fact]
    public async Task Submit_InvalidSource_400()
    {
        var (response, body) = await fixture.Client.SubmitAsync([("a.jpg", Garbage)], source: "bad source!");
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("invalid_source", body["error"]!.GetValue<string>());
    }

    [Fact]
    public async Task Get_UnknownId_404()
    {
        var response = await fixture.Client.Http.GetAsync($"/v1/classifications/{Guid.NewGuid()}");
        var body = await ClassifierClient.ReadJsonAsync(response);
        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        Assert.Equal("not_found", body["error"]!.GetValue<string>());
    }

    [Theory]
    [InlineData("GET", "/v1/classifications/123", HttpStatusCode.NotFound, "not_found")] // not a GUID: the route's constraint
    [InlineData("GET", "/v1/no-such-resource", HttpStatusCode.NotFound, "not_found")]
    [InlineData("GET", "/no-such-page.html", HttpStatusCode.NotFound, "not_found")]
    [InlineData("DELETE", "/v1/classifications", HttpStatusCode.MethodNotAllowed, "method_not_allowed")]
    [InlineData("PATCH", "/v1/models", HttpStatusCode.MethodNotAllowed, "method_not_allowed")]
    public async Task Request_NoEndpointAnswers_JsonError(string method, string url, HttpStatusCode status, string error)
    {
        var response = await fixture.Client.Http.SendAsync(new HttpRequestMessage(new HttpMethod(method), url));

        // These were empty bodies.
        Assert.Equal(status, response.StatusCode);
        var body = await ClassifierClient.ReadJsonAsync(response);
        Assert.Equal(error, body["error"]!.GetValue<string>());
        Assert.Contains(url, body["message"]!.GetValue<string>());
        if (status == HttpStatusCode.MethodNotAllowed) Assert.NotEmpty(response.Content.Headers.Allow);
    }

    [Fact]
    public async Task Request_UnexpectedException_500InternalErrorWithoutItsDetails()
    {
        // A fault no handler expects, from a stage past the API's endpoints that only this test adds.
        await using var factory = fixture.AnotherProcess().WithWebHostBuilder(b => b.ConfigureServices(s => s.AddSingleton<IStartupFilter>(new ThrowingStage())));
        var response = await factory.CreateClient().GetAsync(ThrowingStage.Path);

        Assert.Equal(HttpStatusCode.InternalServerError, response.StatusCode);
        var text = await response.Content.ReadAsStringAsync();
        var body = await ClassifierClient.ReadJsonAsync(response);
        Assert.Equal("internal_error", body["error"]!.GetValue<string>());
        Assert.DoesNotContain(ThrowingStage.Secret, text);
        Assert.DoesNotContain("InvalidOperationException", text);
        // The API's own answers are unchanged.
        Assert.Equal(HttpStatusCode.OK, (await factory.CreateClient().GetAsync("/health/live")).StatusCode);
    }

    /// <summary>Answers <see cref="Path"/>, which no endpoint serves, by throwing.</summary>
    private sealed class ThrowingStage : IStartupFilter
    {
        public const string Path = "/test-only/throws";
        public const string Secret = "connection string Password=hunter2";

        public Action<IApplicationBuilder> Configure(Action<IApplicationBuilder> next) => app =>
        {
            next(app);
            app.Run(context => context.Request.Path == Path ? throw new InvalidOperationException(Secret) : Task.CompletedTask);
        };
    }

    [Theory]
    [InlineData("status=done", "invalid_status")]
    [InlineData("limit=0", "invalid_limit")]
    [InlineData("cursor=%21%21", "invalid_cursor")]
    [InlineData("source=%00", "invalid_source")]
    [InlineData("source=bad%20source!", "invalid_source")]
    public async Task List_BadQuery_400(string query, string error)
    {
        var response = await fixture.Client.Http.GetAsync($"/v1/classifications?{query}");
        var body = await ClassifierClient.ReadJsonAsync(response);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal(error, body["error"]!.GetValue<string>());
    }

    [Theory]
    [InlineData(-1L)]
    [InlineData(long.MaxValue)]
    public async Task List_CursorWithTicksOutOfRange_400InvalidCursor(long ticks)
    {
        var cursor = Convert.ToBase64String(System.Text.Encoding.UTF8.GetBytes($"{ticks}:{Guid.NewGuid()}")).TrimEnd('=').Replace('+', '-').Replace('/', '_');
        var response = await fixture.Client.Http.GetAsync($"/v1/classifications?cursor={cursor}");
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var body = await ClassifierClient.ReadJsonAsync(response);
        Assert.Equal("invalid_cursor", body["error"]!.GetValue<string>());
    }

    [Theory]
    [InlineData("abc")]
    [InlineData("-1")]
    [InlineData("31")]
    [InlineData("NaN")]
    public async Task Get_BadWait_400InvalidWait(string wait)
    {
        var response = await fixture.Client.Http.GetAsync($"/v1/classifications/{Guid.NewGuid()}?wait={wait}");
        var body = await ClassifierClient.ReadJsonAsync(response);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("invalid_wait", body["error"]!.GetValue<string>());
    }

    [Theory]
    [InlineData("/v1/classifications?limit=abc", "invalid_limit", "limit")]
    [InlineData("/v1/training-jobs?limit=abc", "invalid_limit", "limit")]
    [InlineData("/stats/timeseries?minutes=abc", "invalid_minutes", "minutes")]
    [InlineData("/v1/workers?minutes=abc", "invalid_minutes", "minutes")]
    [InlineData("/v1/workers?minutes=0", "invalid_minutes", "minutes")]
    [InlineData("/stats/timeseries?step_seconds=1.5", "invalid_step_seconds", "step_seconds")]
    public async Task Get_TypedParameterThatDoesNotBind_400JsonNamingIt(string url, string error, string parameter)
    {
        var response = await fixture.Client.Http.GetAsync(url);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var body = await ClassifierClient.ReadJsonAsync(response);
        Assert.Equal(error, body["error"]!.GetValue<string>());
        Assert.StartsWith(parameter + " ", body["message"]!.GetValue<string>());
    }

    [Theory]
    [InlineData("{not json", "application/json", HttpStatusCode.BadRequest, "invalid_json")]
    [InlineData("label=glass", "text/plain", HttpStatusCode.UnsupportedMediaType, "expected_json")]
    public async Task Label_BodyNotJson_JsonError(string text, string contentType, HttpStatusCode status, string error)
    {
        using var content = new StringContent(text, System.Text.Encoding.UTF8, contentType);
        var response = await fixture.Client.Http.PutAsync($"/v1/classifications/{Guid.NewGuid()}/label", content);
        Assert.Equal(status, response.StatusCode);
        Assert.Equal(error, (await ClassifierClient.ReadJsonAsync(response))["error"]!.GetValue<string>());
    }

    [Theory]
    [InlineData("{}")]
    [InlineData("{\"lable\": \"glass\"}")]
    [InlineData("{\"label\": null}")]
    public async Task Label_BodyWithoutALabel_400MissingLabelNamingIt(string json)
    {
        using var content = new StringContent(json, System.Text.Encoding.UTF8, "application/json");
        var response = await fixture.Client.Http.PutAsync($"/v1/classifications/{Guid.NewGuid()}/label", content);
        var body = await ClassifierClient.ReadJsonAsync(response);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        // It was invalid_label, as if the label given were unknown.
        Assert.Equal("missing_label", body["error"]!.GetValue<string>());
        Assert.Contains("'label'", body["message"]!.GetValue<string>());
        Assert.Contains("glass", body["message"]!.GetValue<string>());
    }

    [Theory]
    [InlineData("epochs")]
    [InlineData("seed")]
    public async Task TrainingJob_OptionNotANumber_400InvalidOption(string option)
    {
        // The garbage file keeps the request from queueing a job if the option were ignored (then: 400 not_an_image).
        using var form = new MultipartFormDataContent
        {
            { new ByteArrayContent(Garbage), "images", "a.jpg" },
            { new StringContent("glass"), "label" },
            { new StringContent("abc"), option },
        };
        var (status, body) = await PostAsync("/v1/training-jobs", form);
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal("invalid_option", body["error"]!.GetValue<string>());
        Assert.StartsWith(option + " ", body["message"]!.GetValue<string>());
    }

    [Theory]
    [InlineData("/v1/training-jobs", "image", "label", "'image'")]
    [InlineData("/v1/training-jobs", null, "label", "'label'")]
    [InlineData("/v1/training-jobs", null, "labels", "'labels'")]
    [InlineData("/retrain", "image", "label", "'image'")]
    public async Task TrainingJob_FilesInAnotherFieldOrLabelsWithoutFiles_400NoFileAndNoJob(string url, string? fileField, string labelField, string named)
    {
        // A job with no uploads is a plain retrain: these were one (202, images_accepted 0), without the caller's images.
        using var form = new MultipartFormDataContent { { new StringContent("glass"), labelField } };
        if (fileField is not null) form.Add(new ByteArrayContent(Garbage), fileField, "x.jpg");
        var jobsBefore = await CountJobsAsync();

        var (status, body) = await PostAsync(url, form);

        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal("no_file", body["error"]!.GetValue<string>());
        Assert.Contains("'images'", body["message"]!.GetValue<string>());
        Assert.Contains(named, body["message"]!.GetValue<string>());
        Assert.Equal(jobsBefore, await CountJobsAsync());
    }

    [Theory]
    [InlineData("/v1/training-jobs")]
    [InlineData("/retrain")]
    public async Task TrainingJob_BothLabelAndLabels_400ConflictingLabelsNamingBothAndNoJob(string url)
    {
        // 'labels' won silently (202), relabelling a sample uploaded before under 'label''s class.
        using var form = new MultipartFormDataContent
        {
            { new ByteArrayContent(Garbage), "images", "a.jpg" },
            { new StringContent("glass"), "label" },
            { new StringContent("metal"), "labels" },
        };
        var jobsBefore = await CountJobsAsync();

        var (status, body) = await PostAsync(url, form);

        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal("conflicting_labels", body["error"]!.GetValue<string>());
        Assert.Contains("'label'", body["message"]!.GetValue<string>());
        Assert.Contains("'labels'", body["message"]!.GetValue<string>());
        Assert.Equal(jobsBefore, await CountJobsAsync());
    }

    [Fact]
    public async Task Predict_Garbage_400WithSuccessFalse()
    {
        using var form = ClassifierClient.Form([("x.jpg", Garbage)]);
        var (status, body) = await PostAsync("/predict", form);
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.False(body["success"]!.GetValue<bool>());
        Assert.Equal("not_an_image", body["error"]!.GetValue<string>());
    }

    [Fact]
    public async Task Predict_FileInAnotherFieldOrWrongMethod_ErrorWithSuccessFalse()
    {
        // The original API's clients test success on every answer: the multipart reader's and the fallback's errors lacked it.
        using var form = ClassifierClient.Form([("x.jpg", Garbage)], field: "file");
        var (status, body) = await PostAsync("/predict", form);
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.False(body["success"]!.GetValue<bool>());
        Assert.Equal("no_file", body["error"]!.GetValue<string>());
        Assert.Contains("'file'", body["message"]!.GetValue<string>());

        var response = await fixture.Client.Http.GetAsync("/predict");
        Assert.Equal(HttpStatusCode.MethodNotAllowed, response.StatusCode);
        var wrongMethod = await ClassifierClient.ReadJsonAsync(response);
        Assert.False(wrongMethod["success"]!.GetValue<bool>());
        Assert.Equal("method_not_allowed", wrongMethod["error"]!.GetValue<string>());
    }

    [Fact]
    public async Task Predict_TrailingSlash_ErrorsWithSuccessFalse()
    {
        // Routing takes POST /predict/ to Predict; a comparison of the path with "/predict" left its errors without success.
        using var form = ClassifierClient.Form([("x.jpg", Garbage)], field: "file");
        var (status, body) = await PostAsync("/predict/", form);
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal("no_file", body["error"]!.GetValue<string>());
        Assert.False(body["success"]!.GetValue<bool>());

        // No endpoint answers GET /predict/: the fallback's 405, by the path.
        var response = await fixture.Client.Http.GetAsync("/predict/");
        Assert.Equal(HttpStatusCode.MethodNotAllowed, response.StatusCode);
        Assert.False((await ClassifierClient.ReadJsonAsync(response))["success"]!.GetValue<bool>());
    }

    [Fact]
    public async Task Rollback_ToTheActiveVersion_409AlreadyActive()
    {
        var models = (await fixture.Client.Http.GetFromJsonAsync<JsonNode>("/v1/models"))!["items"]!.AsArray();
        var active = models.Single(m => m!["status"]!.GetValue<string>() == "active")!["version"]!.GetValue<string>();

        var response = await fixture.Client.Http.PostAsync($"/v1/models/{active}/rollback", null);

        Assert.Equal(HttpStatusCode.Conflict, response.StatusCode);
        var body = await ClassifierClient.ReadJsonAsync(response);
        Assert.Equal("already_active", body["error"]!.GetValue<string>());
        Assert.Contains(active, body["message"]!.GetValue<string>());
    }

    private async Task<(HttpStatusCode, JsonNode)> PostAsync(string url, HttpContent content)
    {
        var response = await fixture.Client.Http.PostAsync(url, content);
        return (response.StatusCode, await ClassifierClient.ReadJsonAsync(response));
    }

    private async Task<int> CountJobsAsync()
    {
        using var scope = fixture.Factory.Services.CreateScope();
        return await scope.ServiceProvider.GetRequiredService<ClassifierDbContext>().TrainingJobs.CountAsync();
    }

    private async Task<int> CountRowsAsync()
    {
        using var scope = fixture.Factory.Services.CreateScope();
        var db = scope.ServiceProvider.GetRequiredService<ClassifierDbContext>();
        return await db.Classifications.CountAsync() + await db.Images.CountAsync();
    }
}
