using System.Security.Claims;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Diagnostics;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using SixLabors.ImageSharp.PixelFormats;
using WasteClassifier.Api.Apis;
using WasteClassifier.Api.Submissions;
using WasteClassifier.Components.Models;
using WasteClassifier.Components.Training;
using WasteClassifier.Infrastructure.Messaging;
using WasteClassifier.Infrastructure.Persistence;
using WasteClassifier.UnitTests.Support;

namespace WasteClassifier.UnitTests.Api;

/// <summary>
/// POST /v1/samples on SQLite: labelled uploads saved as samples without queueing a job (1,000 images in requests of at most
/// 100 files queued 10 jobs), and the saves of samples and jobs that a client going away must not stop.
/// </summary>
public sealed class SampleUploadTests : IDisposable
{
    private readonly InMemoryDatabase _database = new();
    private readonly MemoryObjectStore _store = new();
    private readonly SeenContentHashes _seen = new();
    private readonly ServiceProvider _services = new ServiceCollection().AddLogging()
        .ConfigureHttpJsonOptions(json => json.SerializerOptions.PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower).BuildServiceProvider();

    [Fact]
    public async Task Upload_LabelledImages_201WithTheSamplesAndNoJobQueued()
    {
        var (glass, metal) = (Png(1), Png(2));

        var (status, body) = await UploadAsync(_database.Context, [("a.png", glass), ("b.png", metal), ("c.png", glass)], ("labels", "paper"), ("labels", "metal"), ("labels", "glass"));

        Assert.Equal(StatusCodes.Status201Created, status);
        Assert.Empty(await _database.Context.TrainingJobs.AsNoTracking().ToListAsync());
        var items = body["items"]!.AsArray();
        Assert.Equal([0, 1, 2], items.Select(i => i!["index"]!.GetValue<int>()));
        Assert.Equal(["a.png", "b.png", "c.png"], items.Select(i => i!["filename"]!.GetValue<string>()));
        // The same bytes twice: one sample, labelled as the later file, and the change reported as a job's answer reports it.
        Assert.Equal(["glass", "metal", "glass"], items.Select(i => i!["label"]!.GetValue<string>()));
        Assert.Equal(items[0]!["id"]!.GetValue<Guid>(), items[2]!["id"]!.GetValue<Guid>());
        Assert.Equal(2, body["samples_saved"]!.GetValue<int>());
        var relabelled = Assert.Single(body["relabelled"]!.AsArray());
        Assert.Equal((2, "paper", "glass", 0), (relabelled!["index"]!.GetValue<int>(), relabelled["previous_label"]!.GetValue<string>(),
            relabelled["label"]!.GetValue<string>(), relabelled["previous_index"]!.GetValue<int>()));
        Assert.Empty(body["rejected"]!.AsArray());

        // Listed by GET /v1/samples as uploads of no job.
        var page = Assert.IsType<Microsoft.AspNetCore.Http.HttpResults.Ok<SamplesApi.SamplePage>>(
            await SamplesApi.ListAsync(_database.Context, label: null, trainingJobId: null, limit: null, cursor: null, CancellationToken.None));
        Assert.Equal(new[] { items[0]!["id"]!.GetValue<Guid>(), items[1]!["id"]!.GetValue<Guid>() }.Order(), page.Value!.Items.Select(s => s.Id).Order());
        Assert.All(page.Value.Items, s => Assert.Equal((SampleOrigin.Upload, (Guid?)null), (s.Origin, s.TrainingJobId)));
    }

    [Theory]
    [InlineData("epochs", "5")]
    [InlineData("promote", "manual")]
    [InlineData("include_feedback", "false")]
    [InlineData("base_dataset", "none")]
    [InlineData("seed", "7")]
    public async Task Upload_WithAJobOption_400NamingItAndNothingSaved(string option, string value)
    {
        // No job is queued: the option would have been dropped without a word.
        var (status, body) = await UploadAsync(_database.Context, [("a.png", Png(1))], ("label", "glass"), (option, value));

        Assert.Equal(StatusCodes.Status400BadRequest, status);
        Assert.Equal("unexpected_option", body["error"]!.GetValue<string>());
        Assert.StartsWith(option + " ", body["message"]!.GetValue<string>());
        Assert.Empty(await _database.Context.LabelledSamples.AsNoTracking().ToListAsync());
        Assert.Empty(await _database.Context.Images.AsNoTracking().ToListAsync());
    }

    [Fact]
    public async Task Upload_ThenATrainingJobWithoutFiles_TheJobTrainsOnTheSamples()
    {
        var (glass, metal) = (Png(1), Png(2));
        Assert.Equal(StatusCodes.Status201Created, (await UploadAsync(_database.Context, [("a.png", glass)], ("label", "glass"))).Status);
        Assert.Equal(StatusCodes.Status201Created, (await UploadAsync(_database.Context, [("b.png", metal)], ("label", "metal"))).Status);

        var (job, error) = await NewSubmitter(_database.Context).SubmitAsync([], [], new TrainingJobOptions(), CancellationToken.None);

        Assert.Null(error);
        Assert.Single(await _database.Context.TrainingJobs.AsNoTracking().ToListAsync());
        var labels = (await Registry(_database.Context).ValidLabelsAsync(CancellationToken.None)).ToList();
        var loader = new TrainingDataLoader(_database.Context, _store, new TrainingSettings());
        var (images, _) = await loader.LoadJobAsync(TrainingJobOptions.FromJson(job!.Job.OptionsJson), labels, CancellationToken.None);
        Assert.Equal(["glass", "metal"], images.Select(i => labels[i.Label]).Order());
        Assert.Equal([glass, metal], images.OrderBy(i => labels[i.Label], StringComparer.Ordinal).Select(i => i.Bytes));
    }

    [Fact]
    public async Task Upload_AnImageATrainingJobUploaded_RelabelsItAndKeepsTheJobLinkAndCreatedAt()
    {
        var glass = Png(1);
        var (job, error) = await NewSubmitter(_database.Context).SubmitAsync([File(0, glass)], ["glass"], new TrainingJobOptions(), CancellationToken.None);
        Assert.Null(error);
        var before = await _database.Context.LabelledSamples.AsNoTracking().SingleAsync();
        Assert.Equal(job!.Job.Id, before.TrainingJobId);

        var (status, body) = await UploadAsync(_database.Context, [("a.png", glass)], ("label", "metal"));

        // It cleared training_job_id and reset created_at: GET /v1/samples?training_job_id=<job> no longer listed it.
        Assert.Equal(StatusCodes.Status201Created, status);
        Assert.Equal("glass", Assert.Single(body["relabelled"]!.AsArray())!["previous_label"]!.GetValue<string>());
        var after = await _database.Context.LabelledSamples.AsNoTracking().SingleAsync();
        Assert.Equal((before.Id, "metal", SampleOrigin.Upload, job.Job.Id, before.CreatedAt), (after.Id, after.Label, after.Origin, after.TrainingJobId, after.CreatedAt));
        var page = Assert.IsType<Microsoft.AspNetCore.Http.HttpResults.Ok<SamplesApi.SamplePage>>(
            await SamplesApi.ListAsync(_database.Context, label: null, trainingJobId: job.Job.Id, limit: null, cursor: null, CancellationToken.None));
        Assert.Equal(before.Id, Assert.Single(page.Value!.Items).Id);
    }

    [Fact]
    public async Task Upload_ClientGoesAwayAsTheSamplesAreSaved_TheyAreSavedAllTheSame()
    {
        // The objects are stored by then: cancelled with the request, the save left them named by no sample.
        using var client = new CancellationTokenSource();
        await using var db = _database.NewContext(new BeforeSamplesSaved(client));

        var (result, error) = await NewSubmitter(db).SaveSamplesAsync([File(0, Png(1))], ["glass"], client.Token);

        Assert.Null(error);
        Assert.True(client.IsCancellationRequested);
        var sample = await _database.Context.LabelledSamples.AsNoTracking().SingleAsync();
        Assert.Equal((Assert.Single(result!.Samples).Id, "glass"), (sample.Id, sample.Label));
    }

    [Fact]
    public async Task SubmitJob_ClientGoesAwayAsTheJobIsSaved_JobAndSamplesSavedAllTheSame()
    {
        using var client = new CancellationTokenSource();
        await using var db = _database.NewContext(new BeforeSamplesSaved(client));

        var (result, error) = await NewSubmitter(db).SubmitAsync([File(0, Png(1))], ["glass"], new TrainingJobOptions(), client.Token);

        Assert.Null(error);
        Assert.True(client.IsCancellationRequested);
        Assert.Equal(result!.Job.Id, (await _database.Context.TrainingJobs.AsNoTracking().SingleAsync()).Id);
        Assert.Equal(result.Job.Id, (await _database.Context.LabelledSamples.AsNoTracking().SingleAsync()).TrainingJobId);
    }

    [Fact]
    public async Task Upload_SameIdempotencyKeyAndRequestTwice_201WithTheSameSamplesAndNothingSavedAgain()
    {
        (string, byte[])[] files = [("a.png", Png(1)), ("b.png", Png(2))];
        var first = await PostSamplesAsync("samples-0001", files, ("labels", "glass"), ("labels", "metal"));
        var samples = await _database.Context.LabelledSamples.AsNoTracking().OrderBy(s => s.Id).ToListAsync();

        var again = await PostSamplesAsync("samples-0001", files, ("labels", "glass"), ("labels", "metal"));

        Assert.Equal((StatusCodes.Status201Created, StatusCodes.Status201Created), (first.Status, again.Status));
        Assert.Equal(first.Body["items"]!.ToJsonString(), again.Body["items"]!.ToJsonString());
        Assert.Equal((false, true), (first.Body["replayed"]!.GetValue<bool>(), again.Body["replayed"]!.GetValue<bool>()));
        // Not saved again: the samples keep their created_at (a save would have moved it).
        Assert.Equal(samples.Select(s => (s.Id, s.CreatedAt)), (await _database.Context.LabelledSamples.AsNoTracking().OrderBy(s => s.Id).ToListAsync()).Select(s => (s.Id, s.CreatedAt)));
    }

    [Fact]
    public async Task Upload_SameIdempotencyKeyOtherLabels_422AndNothingChanged()
    {
        var glass = Png(1);
        Assert.Equal(StatusCodes.Status201Created, (await PostSamplesAsync("samples-0002", [("a.png", glass)], ("label", "glass"))).Status);

        var (status, body) = await PostSamplesAsync("samples-0002", [("a.png", glass)], ("label", "metal"));

        Assert.Equal(StatusCodes.Status422UnprocessableEntity, status);
        Assert.Equal("idempotency_key_reused", body["error"]!.GetValue<string>());
        Assert.Equal("glass", (await _database.Context.LabelledSamples.AsNoTracking().SingleAsync()).Label);
    }

    [Fact]
    public async Task SubmitJob_SameIdempotencyKeyAndRequestTwice_202WithTheSameJobAndNoSecondJob()
    {
        (string, byte[])[] files = [("a.png", Png(1))];
        var first = await SubmitJobAsync("job-0001", caller: "lab", files, ("label", "glass"), ("epochs", "5"));

        var again = await SubmitJobAsync("job-0001", caller: "lab", files, ("label", "glass"), ("epochs", "5"));

        Assert.Equal((StatusCodes.Status202Accepted, StatusCodes.Status202Accepted), (first.Status, again.Status));
        Assert.Equal(first.Body["id"]!.GetValue<Guid>(), again.Body["id"]!.GetValue<Guid>());
        Assert.Equal(1, again.Body["images_accepted"]!.GetValue<int>());
        Assert.True(again.Body["replayed"]!.GetValue<bool>());
        Assert.Single(await _database.Context.TrainingJobs.AsNoTracking().ToListAsync());
    }

    [Theory]
    [InlineData("epochs", "6")]
    [InlineData("label", "metal")]
    public async Task SubmitJob_SameIdempotencyKeyOtherRequest_422AndNoSecondJob(string field, string value)
    {
        const string caller = "lab";
        (string, byte[])[] files = [("a.png", Png(1))];
        Assert.Equal(StatusCodes.Status202Accepted, (await SubmitJobAsync("job-0002", caller, files, ("label", "glass"), ("epochs", "5"))).Status);
        var fields = new Dictionary<string, string> { ["label"] = "glass", ["epochs"] = "5", [field] = value };

        var (status, body) = await SubmitJobAsync("job-0002", caller, files, [.. fields.Select(f => (f.Key, f.Value))]);

        Assert.Equal(StatusCodes.Status422UnprocessableEntity, status);
        Assert.Equal("idempotency_key_reused", body["error"]!.GetValue<string>());
        Assert.Single(await _database.Context.TrainingJobs.AsNoTracking().ToListAsync());
    }

    [Fact]
    public async Task SubmitJob_SameIdempotencyKeyFromAnotherCaller_IsAJobOfItsOwn()
    {
        // Keys are their caller's, as for classifications: another API key's request under the same key is not this one's.
        (string, byte[])[] files = [("a.png", Png(1))];
        var first = await SubmitJobAsync("job-0003", caller: "lab", files, ("label", "glass"));

        var other = await SubmitJobAsync("job-0003", caller: "plant", files, ("label", "glass"));

        Assert.Equal(StatusCodes.Status202Accepted, other.Status);
        Assert.NotEqual(first.Body["id"]!.GetValue<Guid>(), other.Body["id"]!.GetValue<Guid>());
        Assert.Equal(2, await _database.Context.TrainingJobs.AsNoTracking().CountAsync());
    }

    [Fact]
    public async Task SubmitJob_RetryAfterItsLabelLeftTheClasses_ReplaysTheJob()
    {
        // Accepted while the active model had the class 'a'; the model changed before the client's retry came.
        await _database.AddModelAsync("v1", ModelStatus.Active);
        (string, byte[])[] files = [("a.png", Png(1))];
        var first = await SubmitJobAsync("job-0005", caller: "lab", files, ("label", "a"));
        await _database.Context.Models.ExecuteUpdateAsync(m => m.SetProperty(r => r.Status, ModelStatus.Retired));

        var again = await SubmitJobAsync("job-0005", caller: "lab", files, ("label", "a"));
        var fresh = await SubmitJobAsync("job-0006", caller: "lab", files, ("label", "a"));

        Assert.Equal((StatusCodes.Status202Accepted, StatusCodes.Status202Accepted), (first.Status, again.Status));
        Assert.Equal(first.Body["id"]!.GetValue<Guid>(), again.Body["id"]!.GetValue<Guid>());
        Assert.True(again.Body["replayed"]!.GetValue<bool>());
        // A new request is still checked against the classes of now.
        Assert.Equal((StatusCodes.Status400BadRequest, "invalid_label"), (fresh.Status, fresh.Body["error"]!.GetValue<string>()));
        Assert.Single(await _database.Context.TrainingJobs.AsNoTracking().ToListAsync());
    }

    [Fact]
    public async Task Upload_RetryAfterItsLabelLeftTheClasses_ReplaysTheSamples()
    {
        await _database.AddModelAsync("v1", ModelStatus.Active);
        (string, byte[])[] files = [("a.png", Png(1))];
        var first = await PostSamplesAsync("samples-0003", files, ("label", "a"));
        await _database.Context.Models.ExecuteUpdateAsync(m => m.SetProperty(r => r.Status, ModelStatus.Retired));

        var again = await PostSamplesAsync("samples-0003", files, ("label", "a"));

        Assert.Equal((StatusCodes.Status201Created, StatusCodes.Status201Created), (first.Status, again.Status));
        Assert.Equal(first.Body["items"]!.ToJsonString(), again.Body["items"]!.ToJsonString());
        Assert.True(again.Body["replayed"]!.GetValue<bool>());
    }

    [Fact]
    public async Task SubmitJob_RetrySendingTheDefaultsItLeftOut_ReplaysTheJob()
    {
        (string, byte[])[] files = [("a.png", Png(1))];
        var first = await SubmitJobAsync("job-0007", caller: "lab", files, ("label", "glass"));

        var explicitDefaults = await SubmitJobAsync("job-0007", caller: "lab", files, ("label", "glass"), ("include_feedback", "true"), ("promote", "auto"),
            ("base_dataset", new TrainingSettings().BaseDataset), ("epochs", TrainingJobOptions.DefaultEpochs.ToString(System.Globalization.CultureInfo.InvariantCulture)),
            ("seed", TrainingJobOptions.DefaultSeed.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        var onlySome = await SubmitJobAsync("job-0007", caller: "lab", files, ("label", "glass"), ("epochs", "60"));

        Assert.Equal([StatusCodes.Status202Accepted, StatusCodes.Status202Accepted, StatusCodes.Status202Accepted], new[] { first.Status, explicitDefaults.Status, onlySome.Status });
        Assert.Equal(first.Body["id"]!.GetValue<Guid>(), explicitDefaults.Body["id"]!.GetValue<Guid>());
        Assert.Equal(first.Body["id"]!.GetValue<Guid>(), onlySome.Body["id"]!.GetValue<Guid>());
        Assert.Single(await _database.Context.TrainingJobs.AsNoTracking().ToListAsync());
    }

    [Fact]
    public async Task Retrain_SameIdempotencyKeyTwice_TheSameJobOnceAndSharedWithTrainingJobs()
    {
        (string, byte[])[] files = [("a.png", Png(1))];
        var first = await RetrainAsync("retrain-0001", files, ("label", "glass"));

        var again = await RetrainAsync("retrain-0001", files, ("label", "glass"));
        var other = await RetrainAsync("retrain-0001", files, ("label", "metal"));
        // The same job, whichever of the two routes queued it.
        var viaJobs = await SubmitJobAsync("retrain-0001", caller: null, files, ("label", "glass"));

        Assert.Equal((StatusCodes.Status202Accepted, StatusCodes.Status202Accepted), (first.Status, again.Status));
        Assert.Equal(first.Body["job_id"]!.GetValue<Guid>(), again.Body["job_id"]!.GetValue<Guid>());
        Assert.Equal((false, true), (first.Body["replayed"]!.GetValue<bool>(), again.Body["replayed"]!.GetValue<bool>()));
        Assert.Equal((StatusCodes.Status422UnprocessableEntity, "idempotency_key_reused"), (other.Status, other.Body["error"]!.GetValue<string>()));
        Assert.Equal(first.Body["job_id"]!.GetValue<Guid>(), viaJobs.Body["id"]!.GetValue<Guid>());
        Assert.Single(await _database.Context.TrainingJobs.AsNoTracking().ToListAsync());
    }

    [Fact]
    public async Task SubmitJob_KeyPastItsRetention_IsFreeForANewRequestBeforeTheSweep()
    {
        (string, byte[])[] files = [("a.png", Png(1))];
        Assert.Equal(StatusCodes.Status202Accepted, (await SubmitJobAsync("job-0008", "lab", files, ("label", "glass"))).Status);
        await AgeIdempotencyRecordsAsync(TimeSpan.FromHours(IdempotencyOptions.DefaultRetentionHours) + TimeSpan.FromMinutes(1));

        var (status, body) = await SubmitJobAsync("job-0008", "lab", files, ("label", "metal"));
        var retry = await SubmitJobAsync("job-0008", "lab", files, ("label", "metal"));

        // Another request under the expired key: a job of its own, not a 422; and the key now answers for it.
        Assert.Equal(StatusCodes.Status202Accepted, status);
        Assert.False(body["replayed"]!.GetValue<bool>());
        Assert.Equal(2, await _database.Context.TrainingJobs.AsNoTracking().CountAsync());
        Assert.Equal((body["id"]!.GetValue<Guid>(), true), (retry.Body["id"]!.GetValue<Guid>(), retry.Body["replayed"]!.GetValue<bool>()));
    }

    [Fact]
    public async Task Upload_KeyWithinItsRetention_StillReplays()
    {
        (string, byte[])[] files = [("a.png", Png(1))];
        Assert.Equal(StatusCodes.Status201Created, (await PostSamplesAsync("samples-0004", files, ("label", "glass"))).Status);
        await AgeIdempotencyRecordsAsync(TimeSpan.FromHours(IdempotencyOptions.DefaultRetentionHours) - TimeSpan.FromMinutes(1));

        var (status, body) = await PostSamplesAsync("samples-0004", files, ("label", "metal"));

        Assert.Equal((StatusCodes.Status422UnprocessableEntity, "idempotency_key_reused"), (status, body["error"]!.GetValue<string>()));
    }

    [Fact]
    public async Task Sweep_DeletesOnlyRecordsPastTheRetention()
    {
        (string, byte[])[] files = [("a.png", Png(1))];
        await SubmitJobAsync("job-old", "lab", files, ("label", "glass"));
        await AgeIdempotencyRecordsAsync(TimeSpan.FromHours(3));
        await SubmitJobAsync("job-new", "lab", files, ("label", "glass"));
        await using var services = new ServiceCollection().AddScoped(_ => _database.NewContext()).BuildServiceProvider();
        var sweeper = new IdempotencySweeper(services.GetRequiredService<IServiceScopeFactory>(), new IdempotencyOptions(TimeSpan.FromHours(2)), TimeProvider.System,
            NullLogger<IdempotencySweeper>.Instance);

        Assert.Equal(1, await sweeper.SweepAsync(CancellationToken.None));

        Assert.Equal("job-new", (await _database.Context.IdempotentRequests.AsNoTracking().SingleAsync()).Key);
    }

    [Theory]
    [InlineData("0")]
    [InlineData("-1")]
    [InlineData("NaN")]
    public void RetentionHours_NotAboveZero_RefusedAtStart(string hours)
    {
        var configuration = new ConfigurationBuilder()
            .AddInMemoryCollection([new(IdempotencyOptions.RetentionHoursKey, hours)]).Build();

        var error = Assert.Throws<InvalidOperationException>(() => IdempotencyOptions.From(configuration));
        Assert.Contains(IdempotencyOptions.RetentionHoursKey, error.Message);
    }

    [Fact]
    public void RetentionHours_Unset_A24HourRetention() =>
        Assert.Equal(TimeSpan.FromHours(24), IdempotencyOptions.From(new ConfigurationBuilder().Build()).Retention);

    /// <summary>Moves every Idempotency-Key record back by <paramref name="age"/>, as if made that long ago.</summary>
    private async Task AgeIdempotencyRecordsAsync(TimeSpan age)
    {
        await using var db = _database.NewContext();
        foreach (var record in await db.IdempotentRequests.ToListAsync()) record.CreatedAt -= age;
        await db.SaveChangesAsync();
        // The requests here share one context, which still tracks the records as they were (a request has a context of its own).
        _database.Context.ChangeTracker.Clear();
    }

    private Task<(int Status, JsonNode Body)> RetrainAsync(string key, (string Name, byte[] Bytes)[] files, params (string Name, string Value)[] fields) =>
        PostAsync(request => TrainingJobsApi.RetrainAsync(request, NewSubmitter(_database.Context), new UploadOptions(), CancellationToken.None), files, key, caller: null, fields);

    private Task<(int Status, JsonNode Body)> PostSamplesAsync(string key, (string Name, byte[] Bytes)[] files, params (string Name, string Value)[] fields) =>
        PostAsync(request => SamplesApi.UploadAsync(request, NewSubmitter(_database.Context), new UploadOptions(), CancellationToken.None), files, key, caller: null, fields);

    [Fact]
    public async Task SubmitJob_ARepeatUnderTheSameKeySavesFirst_AnsweredWithItsJob()
    {
        // Two tries of one request at once (a client's retry while the first still runs): both find no record of the key,
        // and the later save fails on it; that failure is answered with the earlier try's job, not a 500.
        var key = new IdempotencyKey("lab", "job-0004");
        var glass = Png(1);
        TrainingJobSubmitter.Result? winner = null;
        await using var db = _database.NewContext(new OnceBeforeSamplesSaved(async () =>
        {
            await using var other = _database.NewContext();
            (winner, _) = await NewSubmitter(other).SubmitAsync([File(0, glass)], ["glass"], new TrainingJobOptions(), CancellationToken.None, key);
        }));

        var (result, error) = await NewSubmitter(db).SubmitAsync([File(0, glass)], ["glass"], new TrainingJobOptions(), CancellationToken.None, key);

        Assert.Null(error);
        Assert.True(result!.Replayed);
        Assert.Equal(winner!.Job.Id, result.Job.Id);
        Assert.Single(await _database.Context.TrainingJobs.AsNoTracking().ToListAsync());
    }

    /// <summary>Another request runs just before the first save of samples.</summary>
    private sealed class OnceBeforeSamplesSaved(Func<Task> action) : SaveChangesInterceptor
    {
        private bool _done;

        public override async ValueTask<InterceptionResult<int>> SavingChangesAsync(DbContextEventData eventData, InterceptionResult<int> result,
            CancellationToken cancellationToken = default)
        {
            if (_done || !eventData.Context!.ChangeTracker.Entries<LabelledSample>().Any()) return result;
            _done = true;
            await action();
            return result;
        }
    }

    /// <summary>The client goes away just before the samples are saved (after the images were stored).</summary>
    private sealed class BeforeSamplesSaved(CancellationTokenSource client) : SaveChangesInterceptor
    {
        public override ValueTask<InterceptionResult<int>> SavingChangesAsync(DbContextEventData eventData, InterceptionResult<int> result,
            CancellationToken cancellationToken = default)
        {
            if (eventData.Context!.ChangeTracker.Entries<LabelledSample>().Any()) client.Cancel();
            return ValueTask.FromResult(result);
        }
    }

    private Task<(int Status, JsonNode Body)> UploadAsync(ClassifierDbContext db, (string Name, byte[] Bytes)[] files, params (string Name, string Value)[] fields) =>
        PostAsync(request => SamplesApi.UploadAsync(request, NewSubmitter(db), new UploadOptions(), CancellationToken.None), files, key: null, caller: null, fields);

    private Task<(int Status, JsonNode Body)> SubmitJobAsync(string key, string? caller, (string Name, byte[] Bytes)[] files, params (string Name, string Value)[] fields) =>
        PostAsync(request => TrainingJobsApi.SubmitAsync(request, NewSubmitter(_database.Context), new UploadOptions(), CancellationToken.None), files, key, caller, fields);

    /// <summary>A multipart POST to <paramref name="handler"/>, with an Idempotency-Key and a caller (an API key's name) if given; its answer.</summary>
    private async Task<(int Status, JsonNode Body)> PostAsync(Func<HttpRequest, Task<IResult>> handler, (string Name, byte[] Bytes)[] files, string? key, string? caller,
        (string Name, string Value)[] fields)
    {
        using var content = new MultipartFormDataContent();
        foreach (var (name, bytes) in files) content.Add(new ByteArrayContent(bytes), TrainingJobsApi.ImagesField, name);
        foreach (var (name, value) in fields) content.Add(new StringContent(value), name);
        var context = new DefaultHttpContext { RequestServices = _services };
        if (caller is not null) context.User = new ClaimsPrincipal(new ClaimsIdentity([new Claim(ClaimTypes.Name, caller)], "test"));
        if (key is not null) context.Request.Headers[IdempotencyKeyHeader.Name] = key;
        context.Request.ContentType = content.Headers.ContentType!.ToString();
        var requestBody = new MemoryStream();
        await content.CopyToAsync(requestBody);
        requestBody.Position = 0;
        context.Request.Body = requestBody;

        var result = await handler(context.Request);

        using var responseBody = new MemoryStream();
        context.Response.Body = responseBody;
        await result.ExecuteAsync(context);
        return (context.Response.StatusCode, JsonNode.Parse(responseBody.ToArray())!);
    }

    private ModelRegistry Registry(ClassifierDbContext db) =>
        new(db, _store, publisher: null!, new ModelOptions(), TimeProvider.System, NullLogger<ModelRegistry>.Instance);

    private TrainingJobSubmitter NewSubmitter(ClassifierDbContext db) =>
        new(db, new ImageIntake(db, _store, new UploadOptions(), _seen, TimeProvider.System), Registry(db), new RefusingSendEndpoints(), new MessagingOptions(),
            new TrainingSettings(), TimeProvider.System, NullLogger<TrainingJobSubmitter>.Instance);

    private static byte[] Png(byte shade) => TestImages.SolidPng(16, 16, new Rgb24(shade, 90, 200));

    private static UploadedImage File(int index, byte[] bytes) => new(index, $"{index}.png", "image/png", bytes.Length, bytes);

    public void Dispose()
    {
        _services.Dispose();
        _database.Dispose();
    }
}
