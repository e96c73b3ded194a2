using System.Data.Common;
using System.Net;
using Microsoft.AspNetCore.Hosting;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Diagnostics;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using WasteClassifier.Infrastructure.Persistence;
using WasteClassifier.IntegrationTests.Fixtures;

namespace WasteClassifier.IntegrationTests.Persistence;

/// <summary>
/// A submission whose commit PostgreSQL carried out but whose answer the API never got: EF Core's retrying strategy runs
/// the save again, and its INSERT meets the rows the first one committed.
/// </summary>
public sealed class SubmissionCommitTests
{
    [IntegrationFact]
    public async Task Submit_CommitAnswerLostOnPostgres_TheCommittedRowsAnsweredAndNoSecondSet()
    {
        var settings = await TestServices.DeploymentSettingsAsync("commit");
        var lost = new CommitAnswerLostOnce<Classification>();
        try
        {
            await using var api = new ApiFactory(settings).WithWebHostBuilder(b =>
                b.ConfigureServices(s => s.ConfigureDbContext<ClassifierDbContext>(options => options.AddInterceptors(lost))));
            var client = new ClassifierClient(api.CreateClient());

            var (response, body) = await client.SubmitAsync([("a.jpg", File.ReadAllBytes(Dataset.Sample(1)[4].Path))], source: "commit-lost");

            Assert.True(response.StatusCode == HttpStatusCode.Accepted, body.ToJsonString());
            Assert.True(lost.Fired);
            using var scope = api.Services.CreateScope();
            var db = scope.ServiceProvider.GetRequiredService<ClassifierDbContext>();
            // A second set was recorded and answered, and the first, committed but never sent, was classified again by the
            // re-publisher minutes later.
            var row = await db.Classifications.SingleAsync(c => c.Source == "commit-lost");
            Assert.Equal(row.Id.ToString(), body["items"]![0]!["id"]!.GetValue<string>());
        }
        finally
        {
            await TestServices.DeleteClassifyQueuesAsync(settings["Messaging:ClassifyQueue"]!);
            await TestServices.DeleteTrainQueueAsync(settings["Messaging:TrainQueue"]!);
            await TestServices.DropDatabaseAsync(settings["Database:ConnectionString"]!);
        }
    }

    [IntegrationFact]
    public async Task CommitUpload_CommitAnswerLostOnPostgres_TheCommittedRowSentNow()
    {
        var settings = await TestServices.DeploymentSettingsAsync("ucommit");
        var lost = new CommitAnswerLostOnce<Classification>();
        try
        {
            await using var api = new ApiFactory(settings).WithWebHostBuilder(b =>
                b.ConfigureServices(s => s.ConfigureDbContext<ClassifierDbContext>(options => options.AddInterceptors(lost))));
            using var storage = new HttpClient();

            var outcome = await Ingestion.DirectUploadFlow.RunAsync(api.CreateClient(), storage,
                [("a.jpg", File.ReadAllBytes(Dataset.Sample(1)[5].Path))], "upload-commit-lost");

            Assert.True(lost.Fired);
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
    public async Task SubmitTrainingJob_CommitAnswerLostOnPostgres_ThatJobAnsweredAndSentOnce()
    {
        var settings = await TestServices.DeploymentSettingsAsync("jcommit");
        var lost = new CommitAnswerLostOnce<TrainingJob>();
        try
        {
            await using var api = new ApiFactory(settings).WithWebHostBuilder(b =>
                b.ConfigureServices(s => s.ConfigureDbContext<ClassifierDbContext>(options => options.AddInterceptors(lost))));
            var http = api.CreateClient();
            using var form = new MultipartFormDataContent();
            foreach (var (path, index) in Dataset.Sample(1).Take(2).Select((s, i) => (s.Path, i)))
                form.Add(new ByteArrayContent(File.ReadAllBytes(path)) { Headers = { ContentType = new("image/jpeg") } }, "images", $"{index}.jpg");
            form.Add(new StringContent("glass"), "label");

            var response = await http.PostAsync("/v1/training-jobs", form);
            var body = await ClassifierClient.ReadJsonAsync(response);

            // It answered 503 "nothing was accepted" for the job it had queued: the client's retry queued a second, and this
            // one waited without its message for a trainer's sweeper.
            Assert.True(response.StatusCode == HttpStatusCode.Accepted, body.ToJsonString());
            Assert.True(lost.Fired);
            Assert.Equal(2, body["images_accepted"]!.GetValue<int>());
            using var scope = api.Services.CreateScope();
            var db = scope.ServiceProvider.GetRequiredService<ClassifierDbContext>();
            var job = await db.TrainingJobs.SingleAsync();
            Assert.Equal(job.Id.ToString(), body["id"]!.GetValue<string>());
            Assert.Equal([job.Id, job.Id], (await db.LabelledSamples.ToListAsync()).Select(s => s.TrainingJobId));
            // Sent once, now (no trainer runs in this API).
            Assert.Equal(1u, (await TestServices.QueueCountsAsync(settings["Messaging:TrainQueue"]!)).Ready);
        }
        finally
        {
            await TestServices.DeleteClassifyQueuesAsync(settings["Messaging:ClassifyQueue"]!);
            await TestServices.DeleteTrainQueueAsync(settings["Messaging:TrainQueue"]!);
            await TestServices.DropDatabaseAsync(settings["Database:ConnectionString"]!);
        }
    }

    /// <summary>
    /// After the first commit that saves new <typeparamref name="T"/> rows, throws what a connection reset while reading the
    /// commit's answer throws: a transient NpgsqlException, which the retrying strategy answers by running the save again.
    /// </summary>
    private sealed class CommitAnswerLostOnce<T> : DbTransactionInterceptor where T : class
    {
        private int _fired;

        public bool Fired => _fired == 1;

        public override Task TransactionCommittedAsync(DbTransaction transaction, TransactionEndEventData eventData, CancellationToken cancellationToken = default)
        {
            var saving = eventData.Context?.ChangeTracker.Entries<T>().Any(e => e.State == EntityState.Added) == true;
            if (saving && Interlocked.Exchange(ref _fired, 1) == 0)
                throw new NpgsqlException("Exception while reading from stream", new IOException("Connection reset by peer"));
            return Task.CompletedTask;
        }
    }
}
