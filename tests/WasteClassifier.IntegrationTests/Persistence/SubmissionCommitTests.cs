using System.Data.Common;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Diagnostics;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using Npgsql.EntityFrameworkCore.PostgreSQL.Infrastructure;
using RabbitMQ.Client;
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

    [IntegrationFact]
    public Task SaveSamples_WithAnIdempotencyKey_RetriesRunOutAfterTheCommit_TheCommittedSamplesAnswered() =>
        SaveSamplesAsync(awayForRetries: true, idempotencyKey: Guid.NewGuid().ToString());

    [IntegrationFact]
    public Task SaveSamples_RelabelWithAnIdempotencyKey_RetriesRunOutAfterTheCommit_TheRelabelAnswered() =>
        SaveSamplesAsync(awayForRetries: true, idempotencyKey: Guid.NewGuid().ToString(), relabel: true);

    [IntegrationFact]
    public Task SaveSamples_RelabelWithoutAKey_RetriesRunOutAfterTheCommit_503AndTheRetryFindsTheLabels() =>
        SaveSamplesAsync(awayForRetries: true, relabel: true);

    [IntegrationFact]
    public async Task SaveSamples_ARequestUnderTheSameKeySavedTheSameRelabelFirst_AnsweredAsItsReplay()
    {
        var settings = await TestServices.DeploymentSettingsAsync("kcommit");
        var race = new SameKeySavedFirst();
        try
        {
            await using var api = Api(settings, race);
            race.Services = api.Services;
            var http = api.CreateClient();
            MultipartFormDataContent Form(string label)
            {
                var form = new MultipartFormDataContent();
                foreach (var (path, index) in Dataset.Sample(1).Take(2).Select((s, i) => (s.Path, i)))
                    form.Add(new ByteArrayContent(File.ReadAllBytes(path)) { Headers = { ContentType = new("image/jpeg") } }, "images", $"{index}.jpg");
                form.Add(new StringContent(label), "label");
                return form;
            }
            using (var first = Form("plastic"))
                Assert.Equal(HttpStatusCode.Created, (await http.PostAsync("/v1/samples", first)).StatusCode);

            using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/samples") { Content = Form("glass") };
            request.Headers.Add("Idempotency-Key", Guid.NewGuid().ToString());
            var response = await http.SendAsync(request);
            var body = await ClassifierClient.ReadJsonAsync(response);

            Assert.True(race.Fired);
            // The other request's labels and key record were taken for this one's save: answered as its own relabel,
            // "replayed": false, though it changed nothing.
            Assert.True(response.IsSuccessStatusCode, body.ToJsonString());
            Assert.True(body["replayed"]!.GetValue<bool>(), body.ToJsonString());
        }
        finally
        {
            await TestServices.DeleteClassifyQueuesAsync(settings["Messaging:ClassifyQueue"]!);
            await TestServices.DeleteTrainQueueAsync(settings["Messaging:TrainQueue"]!);
            await TestServices.DropDatabaseAsync(settings["Database:ConnectionString"]!);
        }
    }

    /// <summary>
    /// Before the first save of an Idempotency-Key record, commits on another context what a concurrent request under the
    /// same key and body would have: the same labels on the samples and a record with the same fingerprint, a moment earlier.
    /// </summary>
    private sealed class SameKeySavedFirst : SaveChangesInterceptor
    {
        private int _fired;

        public IServiceProvider? Services { get; set; }

        public bool Fired => _fired == 1;

        public override async ValueTask<InterceptionResult<int>> SavingChangesAsync(DbContextEventData eventData, InterceptionResult<int> result,
            CancellationToken cancellationToken = default)
        {
            if (eventData.Context is { } context && context.ChangeTracker.Entries<IdempotentRequest>().SingleOrDefault(e => e.State == EntityState.Added) is { } mine
                && Interlocked.Exchange(ref _fired, 1) == 0)
            {
                var labels = context.ChangeTracker.Entries<LabelledSample>().Where(e => e.State == EntityState.Modified).ToDictionary(e => e.Entity.Id, e => e.Entity.Label);
                using var scope = Services!.CreateScope();
                var other = scope.ServiceProvider.GetRequiredService<ClassifierDbContext>();
                foreach (var sample in await other.LabelledSamples.Where(s => labels.Keys.Contains(s.Id)).ToListAsync(cancellationToken)) sample.Label = labels[sample.Id];
                var record = mine.Entity;
                other.IdempotentRequests.Add(new IdempotentRequest
                {
                    Scope = record.Scope,
                    Route = record.Route,
                    Key = record.Key,
                    Fingerprint = record.Fingerprint,
                    ResultJson = record.ResultJson,
                    CreatedAt = record.CreatedAt.AddSeconds(-1),
                });
                await other.SaveChangesAsync(cancellationToken);
            }
            return result;
        }
    }

    /// <param name="relabel">The two images' samples are stored under another label first: the request relabels them.</param>
    private static async Task SaveSamplesAsync(bool awayForRetries, bool awayForRead = false, string? idempotencyKey = null, bool relabel = false)
    {
        var settings = await TestServices.DeploymentSettingsAsync("scommit");
        // The commit that labels the samples glass: the relabelling request's saves no new row.
        var lost = new CommitAnswerLostOnce<LabelledSample>(awayForRetries, awayForRead,
            committing: c => c.ChangeTracker.Entries<LabelledSample>().Any(e => e.State is EntityState.Added or EntityState.Modified && e.Entity.Label == "glass"));
        try
        {
            await using var api = Api(settings, lost);
            var http = api.CreateClient();
            MultipartFormDataContent Form(string label = "glass")
            {
                var form = new MultipartFormDataContent();
                foreach (var (path, index) in Dataset.Sample(1).Take(2).Select((s, i) => (s.Path, i)))
                    form.Add(new ByteArrayContent(File.ReadAllBytes(path)) { Headers = { ContentType = new("image/jpeg") } }, "images", $"{index}.jpg");
                form.Add(new StringContent(label), "label");
                return form;
            }
            async Task<HttpResponseMessage> PostAsync(MultipartFormDataContent form)
            {
                using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/samples") { Content = form };
                if (idempotencyKey is not null) request.Headers.Add("Idempotency-Key", idempotencyKey);
                return await http.SendAsync(request);
            }
            if (relabel)
            {
                using var first = Form("plastic");
                var stored = await http.PostAsync("/v1/samples", first);
                Assert.Equal(HttpStatusCode.Created, stored.StatusCode);
            }

            using var form = Form();
            var response = await PostAsync(form);
            var body = await ClassifierClient.ReadJsonAsync(response);
            lost.AssertFired();
            using var scope = api.Services.CreateScope();
            var db = scope.ServiceProvider.GetRequiredService<ClassifierDbContext>();
            var saved = (await db.LabelledSamples.AsNoTracking().OrderBy(s => s.Id).ToListAsync()).Select(s => (s.Id.ToString(), s.Label)).ToList();
            // Committed either way: the two samples, once.
            Assert.Equal(2, saved.Count);
            Assert.All(saved, s => Assert.Equal("glass", s.Label));
            if (relabel && idempotencyKey is null)
            {
                // Another request may have given the stored samples the same label: not answered as this one's relabel, a 503
                // to retry, which finds them labelled so.
                Assert.True(response.StatusCode == HttpStatusCode.ServiceUnavailable, body.ToJsonString());
                using var again = Form();
                response = await PostAsync(again);
                body = await ClassifierClient.ReadJsonAsync(response);
                Assert.True(response.StatusCode == HttpStatusCode.Created, body.ToJsonString());
                Assert.Empty(body["relabelled"]!.AsArray());
            }
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
            if (relabel && idempotencyKey is not null)
                Assert.Equal(["plastic", "plastic"], body["relabelled"]!.AsArray().Select(r => r!["previous_label"]!.GetValue<string>()));
            if (idempotencyKey is not null)
            {
                // The key's record was saved with them: the client's retry is answered as this request's repeat.
                Assert.False(body["replayed"]?.GetValue<bool>() ?? false);
                using var again = Form();
                var replay = await ClassifierClient.ReadJsonAsync(await PostAsync(again));
                Assert.True(replay["replayed"]!.GetValue<bool>(), replay.ToJsonString());
                Assert.Equal(body["items"]!.ToJsonString(), replay["items"]!.ToJsonString());
            }
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

    [IntegrationFact]
    public Task Promote_TheCommitFailsBeforeItIsSent_503AndNothingAnnounced() => PromoteAsync(awayForRead: false, beforeCommit: true);

    [IntegrationFact]
    public Task Promote_TheCallerGivesUpDuringTheRetriesAfterTheCommit_PromotedAndAnnounced() => PromoteAsync(awayForRead: false, callerGivesUp: true);

    /// <param name="rollback">Roll back to a version active before, rather than promote a candidate.</param>
    /// <param name="beforeCommit">The COMMIT fails before it is sent (nothing committed), rather than its answer lost.</param>
    /// <param name="callerGivesUp">
    /// The registry is called directly with a token cancelled when the COMMIT's answer is lost, as the API's request-aborted
    /// token is by a client that gives up during the retries; the database answers them.
    /// </param>
    private static async Task PromoteAsync(bool awayForRead, bool rollback = false, bool beforeCommit = false, bool callerGivesUp = false)
    {
        // Of this test only: the announcements are read from the broker's exchange, which every deployment shares.
        var candidate = $"commit-candidate-{TestServices.NewSuffix()}";
        var settings = await TestServices.DeploymentSettingsAsync("pcommit");
        using var giveUp = new CancellationTokenSource();
        // The promotion's transaction: its save is accepted before the COMMIT, so no row is Added then.
        var lost = new CommitAnswerLostOnce<ModelRecord>(awayForRetries: !callerGivesUp, awayForRead,
            committing: c => c.ChangeTracker.Entries<ModelRecord>().Any(e => e.Entity.Version == candidate && e.Entity.Status == ModelStatus.Active),
            beforeCommit: beforeCommit, fired: callerGivesUp ? giveUp.Cancel : null);
        try
        {
            await using var announcements = await Announcements.BindAsync();
            await using var api = Api(settings, lost);
            var http = api.CreateClient();
            string bundled;
            using (var scope = api.Services.CreateScope())
            {
                var db = scope.ServiceProvider.GetRequiredService<ClassifierDbContext>();
                bundled = (await db.Models.SingleAsync(m => m.Status == ModelStatus.Active)).Version;
                db.Models.Add(new ModelRecord
                {
                    Version = candidate,
                    Origin = "imported",
                    CardJson = "{}",
                    ArtifactPrefix = $"models/{candidate}/",
                    CreatedAt = DateTime.UtcNow.AddHours(-2),
                    Status = rollback ? ModelStatus.Retired : ModelStatus.Candidate,
                    PromotedAt = rollback ? DateTime.UtcNow.AddHours(-1) : null,
                });
                await db.SaveChangesAsync();
            }

            if (callerGivesUp)
            {
                using var scope = api.Services.CreateScope();
                // It threw OperationCanceledException for a promotion that stood, and announced none.
                var previous = await scope.ServiceProvider.GetRequiredService<WasteClassifier.Components.Models.ModelRegistry>().PromoteAsync(candidate, giveUp.Token);
                lost.AssertFired();
                Assert.True(giveUp.IsCancellationRequested);
                Assert.Equal(bundled, previous);
                Assert.Equal([(candidate, bundled)], await announcements.TakeAsync(candidate));
                return;
            }

            var response = await http.PostAsync($"/v1/models/{candidate}/{(rollback ? "rollback" : "promote")}", null);
            var body = await ClassifierClient.ReadJsonAsync(response);

            lost.AssertFired();
            using (var scope = api.Services.CreateScope())
            {
                var db = scope.ServiceProvider.GetRequiredService<ClassifierDbContext>();
                // Committed either way, unless the COMMIT failed before it was sent.
                Assert.Equal(beforeCommit ? bundled : candidate, (await db.Models.AsNoTracking().SingleAsync(m => m.Status == ModelStatus.Active)).Version);
            }
            if (awayForRead || beforeCommit)
            {
                // Unknown whether it was promoted (or read as not promoted): a 503 to retry (not a 500), and no announcement.
                Assert.True(response.StatusCode == HttpStatusCode.ServiceUnavailable, body.ToJsonString());
                Assert.Equal("service_unavailable", body["error"]!.GetValue<string>());
                Assert.Empty(await announcements.TakeAsync(candidate));
                return;
            }
            // It answered 503 for a promotion that stood, announced none, and the client's retry promoted it again: a 200
            // with no previous version, the one to roll back to (a rollback's retry: 409 already_active).
            Assert.True(response.StatusCode == HttpStatusCode.OK, body.ToJsonString());
            Assert.Equal((candidate, bundled), (body["version"]!.GetValue<string>(), body["previous_version"]?.GetValue<string>()));
            // Announced once, with the version it replaced (published before the answer, confirmed by the broker).
            Assert.Equal([(candidate, bundled)], await announcements.TakeAsync(candidate));
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

    /// <summary>
    /// A temporary queue bound to the exchange MassTransit publishes <c>ModelPromoted</c> to (named after the message type,
    /// shared by every deployment on the broker): the announcements made while it is bound.
    /// </summary>
    private sealed class Announcements(IConnection connection, IChannel channel, string queue) : IAsyncDisposable
    {
        private const string Exchange = "WasteClassifier.Contracts.Messages:ModelPromoted";

        public static async Task<Announcements> BindAsync()
        {
            var connection = await TestServices.ConnectToBrokerAsync();
            var channel = await connection.CreateChannelAsync();
            // As MassTransit declares it: durable fanout.
            await channel.ExchangeDeclareAsync(Exchange, ExchangeType.Fanout, durable: true, autoDelete: false);
            var queue = (await channel.QueueDeclareAsync("", durable: false, exclusive: true, autoDelete: true)).QueueName;
            await channel.QueueBindAsync(queue, Exchange, "");
            return new Announcements(connection, channel, queue);
        }

        /// <summary>The (version, previous version) of each announcement of <paramref name="version"/> received so far.</summary>
        public async Task<List<(string Version, string? Previous)>> TakeAsync(string version)
        {
            var taken = new List<(string, string?)>();
            while (await channel.BasicGetAsync(queue, autoAck: true) is { } got)
            {
                var message = JsonNode.Parse(got.Body.Span)!["message"]!;
                if (message["version"]!.GetValue<string>() == version) taken.Add((version, message["previousVersion"]?.GetValue<string>()));
            }
            return taken;
        }

        public async ValueTask DisposeAsync()
        {
            await channel.DisposeAsync();
            await connection.DisposeAsync();
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
    private static WebApplicationFactory<WasteClassifier.Api.ApiEntryPoint> Api(IReadOnlyDictionary<string, string?> settings, IInterceptor lost) =>
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
    /// <param name="beforeCommit">Throw before the COMMIT is sent (nothing committed), not after its answer.</param>
    /// <param name="fired">Called when it throws.</param>
    private sealed class CommitAnswerLostOnce<T>(bool awayForRetries, bool awayForRead = false, Func<DbContext, bool>? committing = null,
        bool beforeCommit = false, Action? fired = null)
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

        public override ValueTask<InterceptionResult> TransactionCommittingAsync(DbTransaction transaction, TransactionEventData eventData, InterceptionResult result,
            CancellationToken cancellationToken = default)
        {
            if (beforeCommit) Fire(eventData.Context);
            return ValueTask.FromResult(result);
        }

        public override Task TransactionCommittedAsync(DbTransaction transaction, TransactionEndEventData eventData, CancellationToken cancellationToken = default)
        {
            if (!beforeCommit) Fire(eventData.Context);
            return Task.CompletedTask;
        }

        private void Fire(DbContext? context)
        {
            if (context is not null && (committing ?? Saving)(context) && Interlocked.Exchange(ref _fired, 1) == 0)
            {
                _lost = context;
                fired?.Invoke();
                throw Lost();
            }
        }

        private static bool Saving(DbContext context) => context.ChangeTracker.Entries<T>().Any(e => e.State == EntityState.Added);

        private static NpgsqlException Lost() => new("Exception while reading from stream", new IOException("Connection reset by peer"));
    }
}
