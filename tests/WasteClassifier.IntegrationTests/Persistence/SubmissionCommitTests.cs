using System.Data.Common;
using System.Net;
using System.Net.Http.Json;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Diagnostics;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using Npgsql.EntityFrameworkCore.PostgreSQL.Infrastructure;
using RabbitMQ.Client.Exceptions;
using WasteClassifier.Infrastructure.Persistence;
using WasteClassifier.IntegrationTests.Fixtures;

namespace WasteClassifier.IntegrationTests.Persistence;

/// <summary>
/// A submission whose commit PostgreSQL carried out but whose answer the API never got: EF Core's retrying strategy runs
/// the save again, and its INSERT meets the rows the first one committed; or the database is away for those tries, and
/// the strategy gives up (RetryLimitExceededException), and the API reads whether its rows are there, once.
/// </summary>
public sealed class SubmissionCommitTests
{
    [IntegrationFact]
    public Task Submit_CommitAnswerLostOnPostgres_TheCommittedRowsAnsweredAndNoSecondSet() => SubmitAsync(awayForRetries: false);

    [IntegrationFact]
    public Task Submit_RetriesRunOutAfterTheCommitOnPostgres_TheCommittedRowsAnsweredAndNoSecondSet() => SubmitAsync(awayForRetries: true);

    private static async Task SubmitAsync(bool awayForRetries)
    {
        var settings = await TestServices.DeploymentSettingsAsync("commit");
        var lost = new CommitAnswerLostOnce<Classification>(awayForRetries);
        try
        {
            await using var api = Api(settings, lost);
            var client = new ClassifierClient(api.CreateClient());

            var (response, body) = await client.SubmitAsync([("a.jpg", File.ReadAllBytes(Dataset.Sample(1)[4].Path))], source: "commit-lost");

            Assert.True(response.StatusCode == HttpStatusCode.Accepted, body.ToJsonString());
            lost.AssertFired();
            using var scope = api.Services.CreateScope();
            var db = scope.ServiceProvider.GetRequiredService<ClassifierDbContext>();
            // A second set was recorded and answered, and the first, committed but never sent, was classified again by the
            // re-publisher minutes later.
            var row = await db.Classifications.SingleAsync(c => c.Source == "commit-lost");
            Assert.Equal(row.Id.ToString(), body["items"]![0]!["id"]!.GetValue<string>());
            // Sent now (no worker takes it here), once.
            Assert.Equal(1u, await ReadyAsync(settings["Messaging:ClassifyQueue"]!));
        }
        finally
        {
            await TestServices.DeleteClassifyQueuesAsync(settings["Messaging:ClassifyQueue"]!);
            await TestServices.DeleteTrainQueueAsync(settings["Messaging:TrainQueue"]!);
            await TestServices.DropDatabaseAsync(settings["Database:ConnectionString"]!);
        }
    }

    [IntegrationFact]
    public async Task Submit_RetriesRunOutAndTheDatabaseStillRefusesTheRead_503AfterOneReadAndNothingSent()
    {
        var settings = await TestServices.DeploymentSettingsAsync("rcommit");
        var lost = new CommitAnswerLostOnce<Classification>(awayForRetries: true, awayForRead: true);
        try
        {
            await using var api = Api(settings, lost);
            var client = new ClassifierClient(api.CreateClient());

            var (response, body) = await client.SubmitAsync([("a.jpg", File.ReadAllBytes(Dataset.Sample(1)[4].Path))], source: "commit-unread");

            // Unknown whether anything was saved: a 503 to retry (not a 500), and no message for rows it could not read.
            Assert.True(response.StatusCode == HttpStatusCode.ServiceUnavailable, body.ToJsonString());
            Assert.Equal("service_unavailable", body["error"]!.GetValue<string>());
            lost.AssertFired();
            Assert.Equal(0u, await ReadyAsync(settings["Messaging:ClassifyQueue"]!));
        }
        finally
        {
            await TestServices.DeleteClassifyQueuesAsync(settings["Messaging:ClassifyQueue"]!);
            await TestServices.DeleteTrainQueueAsync(settings["Messaging:TrainQueue"]!);
            await TestServices.DropDatabaseAsync(settings["Database:ConnectionString"]!);
        }
    }

    [IntegrationFact]
    public Task CommitUpload_CommitAnswerLostOnPostgres_TheCommittedRowSentNow() => CommitUploadAsync(awayForRetries: false);

    [IntegrationFact]
    public Task CommitUpload_RetriesRunOutAfterTheCommitOnPostgres_TheCommittedRowAnsweredAndSentNow() => CommitUploadAsync(awayForRetries: true);

    private static async Task CommitUploadAsync(bool awayForRetries)
    {
        var settings = await TestServices.DeploymentSettingsAsync("ucommit");
        var lost = new CommitAnswerLostOnce<Classification>(awayForRetries);
        try
        {
            await using var api = Api(settings, lost);
            using var storage = new HttpClient();

            var outcome = await Ingestion.DirectUploadFlow.RunAsync(api.CreateClient(), storage,
                [("a.jpg", File.ReadAllBytes(Dataset.Sample(1)[5].Path))], "upload-commit-lost");

            lost.AssertFired();
            using var scope = api.Services.CreateScope();
            var db = scope.ServiceProvider.GetRequiredService<ClassifierDbContext>();
            var row = await db.Classifications.SingleAsync(c => c.Source == "upload-commit-lost");
            Assert.Equal(row.Id, Assert.Single(outcome.ClassificationIds));
            // Sent now (no worker takes it here): stamped as sent but never sent, it waited for the re-publisher's rule for
            // lost messages, about ten minutes.
            Assert.Equal(1u, (await TestServices.QueueCountsAsync(settings["Messaging:ClassifyQueue"]!)).Ready);
        }
        finally
        {
            await TestServices.DeleteClassifyQueuesAsync(settings["Messaging:ClassifyQueue"]!);
            await TestServices.DeleteTrainQueueAsync(settings["Messaging:TrainQueue"]!);
            await TestServices.DropDatabaseAsync(settings["Database:ConnectionString"]!);
        }
    }

    [IntegrationFact]
    public async Task CommitUpload_RetriesRunOutAndTheDatabaseStillRefusesTheRead_503AfterOneReadAndNothingSent()
    {
        var settings = await TestServices.DeploymentSettingsAsync("rucommit");
        var lost = new CommitAnswerLostOnce<Classification>(awayForRetries: true, awayForRead: true);
        try
        {
            await using var api = Api(settings, lost);
            var http = api.CreateClient();
            using var storage = new HttpClient();
            var bytes = File.ReadAllBytes(Dataset.Sample(1)[5].Path);
            var created = await ClassifierClient.ReadJsonAsync(await http.PostAsJsonAsync("/v1/uploads",
                new { files = new[] { new { filename = "a.jpg", content_type = "image/jpeg", size = bytes.Length } }, source = "upload-commit-unread" }));
            var upload = created["uploads"]![0]!;
            using var put = new HttpRequestMessage(HttpMethod.Put, upload["url"]!.GetValue<string>()) { Content = new ByteArrayContent(bytes) };
            put.Content.Headers.ContentType = new("image/jpeg");
            Assert.True((await storage.SendAsync(put)).IsSuccessStatusCode);
            var ids = new[] { Guid.Parse(upload["id"]!.GetValue<string>()) };

            var commit = await http.PostAsJsonAsync("/v1/uploads/commit", new { ids });
            var body = await ClassifierClient.ReadJsonAsync(commit);

            // Unknown whether the commit was saved: a 503 to retry (not a 500), and no message for rows it could not read.
            Assert.True(commit.StatusCode == HttpStatusCode.ServiceUnavailable, body.ToJsonString());
            Assert.Equal("service_unavailable", body["error"]!.GetValue<string>());
            lost.AssertFired();
            Assert.Equal(0u, await ReadyAsync(settings["Messaging:ClassifyQueue"]!));
            // It was saved: the client's retry answers with that commit's row (a direct-upload commit is repeatable).
            var again = await http.PostAsJsonAsync("/v1/uploads/commit", new { ids });
            var replay = await ClassifierClient.ReadJsonAsync(again);
            Assert.True(again.StatusCode == HttpStatusCode.Accepted, replay.ToJsonString());
            using var scope = api.Services.CreateScope();
            var db = scope.ServiceProvider.GetRequiredService<ClassifierDbContext>();
            var row = await db.Classifications.SingleAsync(c => c.Source == "upload-commit-unread");
            Assert.Equal(row.Id.ToString(), replay["items"]![0]!["classification_id"]!.GetValue<string>());
        }
        finally
        {
            await TestServices.DeleteClassifyQueuesAsync(settings["Messaging:ClassifyQueue"]!);
            await TestServices.DeleteTrainQueueAsync(settings["Messaging:TrainQueue"]!);
            await TestServices.DropDatabaseAsync(settings["Database:ConnectionString"]!);
        }
    }

    [IntegrationFact]
    public Task SaveSamples_CommitAnswerLostOnPostgres_TheCommittedSamplesAnswered() => SaveSamplesAsync(awayForRetries: false);

    [IntegrationFact]
    public Task SaveSamples_RetriesRunOutAfterTheCommitOnPostgres_TheCommittedSamplesAnswered() => SaveSamplesAsync(awayForRetries: true);

    [IntegrationFact]
    public Task SaveSamples_RetriesRunOutAndTheDatabaseStillRefusesTheRead_503AfterOneRead() => SaveSamplesAsync(awayForRetries: true, awayForRead: true);

    private static async Task SaveSamplesAsync(bool awayForRetries, bool awayForRead = false)
    {
        var settings = await TestServices.DeploymentSettingsAsync("scommit");
        var lost = new CommitAnswerLostOnce<LabelledSample>(awayForRetries, awayForRead);
        try
        {
            await using var api = Api(settings, lost);
            var http = api.CreateClient();
            MultipartFormDataContent Form()
            {
                var form = new MultipartFormDataContent();
                foreach (var (path, index) in Dataset.Sample(1).Take(2).Select((s, i) => (s.Path, i)))
                    form.Add(new ByteArrayContent(File.ReadAllBytes(path)) { Headers = { ContentType = new("image/jpeg") } }, "images", $"{index}.jpg");
                form.Add(new StringContent("glass"), "label");
                return form;
            }

            using var form = Form();
            var response = await http.PostAsync("/v1/samples", form);
            var body = await ClassifierClient.ReadJsonAsync(response);
            lost.AssertFired();
            using var scope = api.Services.CreateScope();
            var db = scope.ServiceProvider.GetRequiredService<ClassifierDbContext>();
            var saved = (await db.LabelledSamples.AsNoTracking().OrderBy(s => s.Id).ToListAsync()).Select(s => (s.Id.ToString(), s.Label)).ToList();
            // Committed either way: the two samples, once.
            Assert.Equal(2, saved.Count);
            if (awayForRead)
            {
                // Unknown whether the samples were saved: a 503 to retry (not a 500).
                Assert.True(response.StatusCode == HttpStatusCode.ServiceUnavailable, body.ToJsonString());
                Assert.Equal("service_unavailable", body["error"]!.GetValue<string>());
                using var again = Form();
                response = await http.PostAsync("/v1/samples", again);
                body = await ClassifierClient.ReadJsonAsync(response);
            }

            // It answered 503 "nothing was accepted" for the samples it had saved.
            Assert.True(response.StatusCode == HttpStatusCode.Created, body.ToJsonString());
            Assert.Equal(2, body["samples_saved"]!.GetValue<int>());
            Assert.Equal(saved, body["items"]!.AsArray().Select(i => (i!["id"]!.GetValue<string>(), i["label"]!.GetValue<string>())).OrderBy(i => i.Item1));
            Assert.Equal(saved, (await db.LabelledSamples.AsNoTracking().OrderBy(s => s.Id).ToListAsync()).Select(s => (s.Id.ToString(), s.Label)));
        }
        finally
        {
            await TestServices.DeleteClassifyQueuesAsync(settings["Messaging:ClassifyQueue"]!);
            await TestServices.DeleteTrainQueueAsync(settings["Messaging:TrainQueue"]!);
            await TestServices.DropDatabaseAsync(settings["Database:ConnectionString"]!);
        }
    }

    [IntegrationFact]
    public Task Promote_RetriesRunOutAfterTheCommitOnPostgres_200WithThePreviousVersion() => PromoteAsync(awayForRead: false);

    [IntegrationFact]
    public Task Promote_RetriesRunOutAndTheDatabaseStillRefusesTheRead_503AfterOneRead() => PromoteAsync(awayForRead: true);

    [IntegrationFact]
    public Task Rollback_RetriesRunOutAfterTheCommitOnPostgres_200WithThePreviousVersion() => PromoteAsync(awayForRead: false, rollback: true);

    /// <param name="rollback">Roll back to a version active before, rather than promote a candidate.</param>
    private static async Task PromoteAsync(bool awayForRead, bool rollback = false)
    {
        const string Candidate = "commit-candidate";
        var settings = await TestServices.DeploymentSettingsAsync("pcommit");
        // The promotion's transaction: its save is accepted before the COMMIT, so no row is Added then.
        var lost = new CommitAnswerLostOnce<ModelRecord>(awayForRetries: true, awayForRead,
            committing: c => c.ChangeTracker.Entries<ModelRecord>().Any(e => e.Entity.Version == Candidate && e.Entity.Status == ModelStatus.Active));
        try
        {
            await using var api = Api(settings, lost);
            var http = api.CreateClient();
            string bundled;
            using (var scope = api.Services.CreateScope())
            {
                var db = scope.ServiceProvider.GetRequiredService<ClassifierDbContext>();
                bundled = (await db.Models.SingleAsync(m => m.Status == ModelStatus.Active)).Version;
                db.Models.Add(new ModelRecord
                {
                    Version = Candidate,
                    Origin = "imported",
                    CardJson = "{}",
                    ArtifactPrefix = $"models/{Candidate}/",
                    CreatedAt = DateTime.UtcNow.AddHours(-2),
                    Status = rollback ? ModelStatus.Retired : ModelStatus.Candidate,
                    PromotedAt = rollback ? DateTime.UtcNow.AddHours(-1) : null,
                });
                await db.SaveChangesAsync();
            }

            var response = await http.PostAsync($"/v1/models/{Candidate}/{(rollback ? "rollback" : "promote")}", null);
            var body = await ClassifierClient.ReadJsonAsync(response);

            lost.AssertFired();
            using (var scope = api.Services.CreateScope())
            {
                var db = scope.ServiceProvider.GetRequiredService<ClassifierDbContext>();
                // Committed either way.
                Assert.Equal(Candidate, (await db.Models.AsNoTracking().SingleAsync(m => m.Status == ModelStatus.Active)).Version);
            }
            if (awayForRead)
            {
                // Unknown whether it was promoted: a 503 to retry (not a 500).
                Assert.True(response.StatusCode == HttpStatusCode.ServiceUnavailable, body.ToJsonString());
                Assert.Equal("service_unavailable", body["error"]!.GetValue<string>());
                return;
            }
            // It answered 503 for a promotion that stood, announced none, and the client's retry promoted it again: a 200
            // with no previous version, the one to roll back to (a rollback's retry: 409 already_active).
            Assert.True(response.StatusCode == HttpStatusCode.OK, body.ToJsonString());
            Assert.Equal((Candidate, bundled), (body["version"]!.GetValue<string>(), body["previous_version"]?.GetValue<string>()));
        }
        finally
        {
            await TestServices.DeleteClassifyQueuesAsync(settings["Messaging:ClassifyQueue"]!);
            await TestServices.DeleteTrainQueueAsync(settings["Messaging:TrainQueue"]!);
            await TestServices.DropDatabaseAsync(settings["Database:ConnectionString"]!);
        }
    }

    [IntegrationFact]
    public Task SubmitTrainingJob_CommitAnswerLostOnPostgres_ThatJobAnsweredAndSentOnce() => SubmitTrainingJobAsync(awayForRetries: false);

    [IntegrationFact]
    public Task SubmitTrainingJob_RetriesRunOutAfterTheCommitOnPostgres_ThatJobAnsweredAndSentOnce() => SubmitTrainingJobAsync(awayForRetries: true);

    [IntegrationFact]
    public Task SubmitTrainingJob_RetriesRunOutAndTheDatabaseStillRefusesTheRead_503AfterOneReadAndNothingSent() =>
        SubmitTrainingJobAsync(awayForRetries: true, awayForRead: true);

    private static async Task SubmitTrainingJobAsync(bool awayForRetries, bool awayForRead = false)
    {
        var settings = await TestServices.DeploymentSettingsAsync("jcommit");
        var lost = new CommitAnswerLostOnce<TrainingJob>(awayForRetries, awayForRead);
        try
        {
            await using var api = Api(settings, lost);
            var http = api.CreateClient();
            using var form = new MultipartFormDataContent();
            foreach (var (path, index) in Dataset.Sample(1).Take(2).Select((s, i) => (s.Path, i)))
                form.Add(new ByteArrayContent(File.ReadAllBytes(path)) { Headers = { ContentType = new("image/jpeg") } }, "images", $"{index}.jpg");
            form.Add(new StringContent("glass"), "label");

            var response = await http.PostAsync("/v1/training-jobs", form);
            var body = await ClassifierClient.ReadJsonAsync(response);
            if (awayForRead)
            {
                // Unknown whether the job was saved: a 503 to retry (not a 500), and no message for a job it could not read.
                Assert.True(response.StatusCode == HttpStatusCode.ServiceUnavailable, body.ToJsonString());
                Assert.Equal("service_unavailable", body["error"]!.GetValue<string>());
                lost.AssertFired();
                Assert.Equal(0u, await ReadyAsync(settings["Messaging:TrainQueue"]!));
                return;
            }

            // It answered 503 "nothing was accepted" for the job it had queued: the client's retry queued a second, and this
            // one waited without its message for a trainer's sweeper.
            Assert.True(response.StatusCode == HttpStatusCode.Accepted, body.ToJsonString());
            lost.AssertFired();
            Assert.Equal(2, body["images_accepted"]!.GetValue<int>());
            using var scope = api.Services.CreateScope();
            var db = scope.ServiceProvider.GetRequiredService<ClassifierDbContext>();
            var job = await db.TrainingJobs.SingleAsync();
            Assert.Equal(job.Id.ToString(), body["id"]!.GetValue<string>());
            Assert.Equal([job.Id, job.Id], (await db.LabelledSamples.ToListAsync()).Select(s => s.TrainingJobId));
            // Sent once, now (no trainer runs in this API).
            Assert.Equal(1u, await ReadyAsync(settings["Messaging:TrainQueue"]!));
        }
        finally
        {
            await TestServices.DeleteClassifyQueuesAsync(settings["Messaging:ClassifyQueue"]!);
            await TestServices.DeleteTrainQueueAsync(settings["Messaging:TrainQueue"]!);
            await TestServices.DropDatabaseAsync(settings["Database:ConnectionString"]!);
        }
    }

    /// <summary>A queue's ready messages; 0 when nothing was ever sent to it (no send declared it).</summary>
    private static async Task<uint> ReadyAsync(string queue)
    {
        try
        {
            return (await TestServices.QueueCountsAsync(queue)).Ready;
        }
        catch (OperationInterruptedException e) when (e.ShutdownReason?.ReplyCode == 404)
        {
            return 0;
        }
    }

    /// <summary>
    /// The API on <paramref name="settings"/> with <paramref name="lost"/> on its database. PostgreSQL's retrying strategy
    /// as the API configures it, with fewer and shorter waits: the tries run out after 2 retries instead of 5 (about 14 s).
    /// </summary>
    private static WebApplicationFactory<WasteClassifier.Api.ApiEntryPoint> Api(IReadOnlyDictionary<string, string?> settings, DbTransactionInterceptor lost) =>
        new ApiFactory(settings).WithWebHostBuilder(b => b.ConfigureServices(s => s.ConfigureDbContext<ClassifierDbContext>(options =>
        {
            options.AddInterceptors(lost);
            new NpgsqlDbContextOptionsBuilder(options).EnableRetryOnFailure(CommitAnswerLostOnce<Classification>.Retries, TimeSpan.FromMilliseconds(100), errorCodesToAdd: null);
        })));

    /// <summary>
    /// After the first commit that saves new <typeparamref name="T"/> rows (or that <paramref name="committing"/> recognises),
    /// throws what a connection reset while reading the commit's answer throws: a transient NpgsqlException, which the
    /// retrying strategy answers by running the save again. <paramref name="awayForRetries"/>: the database is then away for
    /// each of those tries on that context (each fails to begin its transaction, as it fails to connect), and the strategy
    /// gives up with a RetryLimitExceededException. <paramref name="awayForRead"/>: and still away for the read of the save's
    /// rows that follows.
    /// </summary>
    private sealed class CommitAnswerLostOnce<T>(bool awayForRetries, bool awayForRead = false, Func<DbContext, bool>? committing = null)
        : DbTransactionInterceptor, IDbCommandInterceptor where T : class
    {
        public const int Retries = 2;

        private int _fired;
        private int _refused;
        private int _reads;
        // The context of the commit whose answer was lost: its retries and its read are refused, not another request's
        // (contexts are pooled, and a promotion's retry starts from a cleared context).
        private DbContext? _lost;

        public void AssertFired()
        {
            Assert.Equal(1, _fired);
            // Every try again refused, so the strategy ran out of them.
            Assert.Equal(awayForRetries ? Retries : 0, _refused);
            // Tried once: through the retrying strategy, a database that is down answered 503 after twice the retries.
            Assert.Equal(awayForRead ? 1 : 0, _reads);
        }

        public ValueTask<InterceptionResult<DbDataReader>> ReaderExecutingAsync(DbCommand command, CommandEventData eventData, InterceptionResult<DbDataReader> result,
            CancellationToken cancellationToken = default)
        {
            // The save's tries have run out: this is the read of whether its rows are there.
            if (awayForRead && _refused == Retries && _lost is not null && ReferenceEquals(eventData.Context, _lost) && _reads == 0)
            {
                _reads++;
                throw Lost();
            }
            return ValueTask.FromResult(result);
        }

        public override ValueTask<InterceptionResult<DbTransaction>> TransactionStartingAsync(DbConnection connection, TransactionStartingEventData eventData,
            InterceptionResult<DbTransaction> result, CancellationToken cancellationToken = default)
        {
            // One request at a time uses a pooled context: its own tries, then nothing more once they have run out.
            if (awayForRetries && _lost is not null && ReferenceEquals(eventData.Context, _lost) && _refused < Retries)
            {
                _refused++;
                throw Lost();
            }
            return ValueTask.FromResult(result);
        }

        public override Task TransactionCommittedAsync(DbTransaction transaction, TransactionEndEventData eventData, CancellationToken cancellationToken = default)
        {
            if (eventData.Context is { } context && (committing ?? Saving)(context) && Interlocked.Exchange(ref _fired, 1) == 0)
            {
                _lost = context;
                throw Lost();
            }
            return Task.CompletedTask;
        }

        private static bool Saving(DbContext context) => context.ChangeTracker.Entries<T>().Any(e => e.State == EntityState.Added);

        private static NpgsqlException Lost() => new("Exception while reading from stream", new IOException("Connection reset by peer"));
    }
}
