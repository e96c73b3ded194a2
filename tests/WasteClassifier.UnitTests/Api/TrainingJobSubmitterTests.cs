using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Data.Sqlite;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Diagnostics;
using Microsoft.Extensions.Logging.Abstractions;
using SixLabors.ImageSharp.PixelFormats;
using WasteClassifier.Api.Apis;
using WasteClassifier.Api.Security;
using WasteClassifier.Api.Submissions;
using WasteClassifier.Components.Models;
using WasteClassifier.Components.Training;
using WasteClassifier.Infrastructure.Messaging;
using WasteClassifier.Infrastructure.Persistence;
using WasteClassifier.UnitTests.Support;

namespace WasteClassifier.UnitTests.Api;

public sealed class TrainingJobSubmitterTests
{
    [Fact]
    public async Task Submit_BrokerUnreachable_JobIsAcceptedAndLeftQueuedForTheSweeper()
    {
        using var database = new InMemoryDatabase();
        var db = database.Context;
        var submitter = NewSubmitter(db);

        var (result, error) = await submitter.SubmitAsync([], [], new TrainingJobOptions(), CancellationToken.None);

        // The job is recorded before the send, so it is accepted: a trainer's sweeper sends it once the broker is back.
        Assert.Null(error);
        var job = await db.TrainingJobs.AsNoTracking().SingleAsync();
        Assert.Equal(result!.Job.Id, job.Id);
        Assert.Equal(TrainingJobStatus.Queued, job.Status);
    }

    [Fact]
    public async Task Submit_SameBytesTwiceInOneRequestUnderTwoLabels_TheLaterWinsAndIsReported()
    {
        // The README says the latest label wins; of two files in one request the first one's was kept, unreported.
        using var database = new InMemoryDatabase();
        var db = database.Context;
        var dup = Png(1);

        var (result, error) = await NewSubmitter(db).SubmitAsync([File(0, dup), File(1, Png(2)), File(2, dup)], ["paper", "glass", "cardboard"],
            new TrainingJobOptions(), CancellationToken.None);

        Assert.Null(error);
        Assert.Equal(3, result!.Accepted);
        Assert.Equal(["cardboard", "glass"], (await db.LabelledSamples.AsNoTracking().ToListAsync()).Select(s => s.Label).Order());
        var relabelled = Assert.Single(result.Relabelled);
        Assert.Equal(new TrainingJobSubmitter.RelabelledSample(2, "paper", "cardboard", PreviousIndex: 0), relabelled);
    }

    [Fact]
    public async Task Submit_ExistingSampleUnderAnotherLabel_IsRelabelledAndReported()
    {
        using var database = new InMemoryDatabase();
        var db = database.Context;
        var glass = Png(1);
        var (first, _) = await NewSubmitter(db).SubmitAsync([File(0, glass)], ["glass"], new TrainingJobOptions(), CancellationToken.None);
        Assert.Empty(first!.Relabelled);
        var glassImage = (await db.LabelledSamples.AsNoTracking().SingleAsync()).ImageId;

        var (second, error) = await NewSubmitter(db).SubmitAsync([File(0, Png(2)), File(1, glass)], ["metal", "metal"], new TrainingJobOptions(), CancellationToken.None);

        // The latest label wins, as the README says, but the caller is told: this went unseen until /predict answered metal.
        Assert.Null(error);
        var relabelled = Assert.Single(second!.Relabelled);
        Assert.Equal(new TrainingJobSubmitter.RelabelledSample(1, "glass", "metal", PreviousIndex: null), relabelled);
        Assert.Equal("metal", (await db.LabelledSamples.AsNoTracking().SingleAsync(s => s.ImageId == glassImage)).Label);
    }

    [Fact]
    public async Task Submit_BackToTheStoredLabelWithinOneRequest_ReportsOnlyNetChanges()
    {
        // glass -> metal -> glass in one request left the sample as it was, but two relabellings were reported.
        using var database = new InMemoryDatabase();
        var db = database.Context;
        var (glass, paper) = (Png(1), Png(2));
        await NewSubmitter(db).SubmitAsync([File(0, glass), File(1, paper)], ["glass", "paper"], new TrainingJobOptions(), CancellationToken.None);

        var (result, error) = await NewSubmitter(db).SubmitAsync([File(0, glass), File(1, glass), File(2, paper), File(3, paper)],
            ["metal", "glass", "metal", "cardboard"], new TrainingJobOptions(), CancellationToken.None);

        Assert.Null(error);
        var relabelled = Assert.Single(result!.Relabelled);
        Assert.Equal(new TrainingJobSubmitter.RelabelledSample(3, "paper", "cardboard", PreviousIndex: null), relabelled);
        Assert.Equal(["cardboard", "glass"], (await db.LabelledSamples.AsNoTracking().ToListAsync()).Select(s => s.Label).Order());
    }

    [Fact]
    public async Task Submit_SampleDeletedBetweenReadAndSave_TheUploadCreatesANewSample()
    {
        // DELETE /v1/samples/{id} between the relabelling upload's read and its save: the update found no row, and the
        // API answered 500 (DbUpdateConcurrencyException).
        using var database = new InMemoryDatabase();
        var glass = Png(1);
        await NewSubmitter(database.Context).SubmitAsync([File(0, glass)], ["glass"], new TrainingJobOptions(), CancellationToken.None);
        var stored = await database.Context.LabelledSamples.AsNoTracking().SingleAsync();
        var race = new BeforeSamplesSaved(async other => Assert.IsType<NoContent>(await SamplesApi.DeleteAsync(stored.Id, other, CancellationToken.None)), database);
        await using var db = database.NewContext(race);

        var (result, error) = await NewSubmitter(db).SubmitAsync([File(0, glass)], ["metal"], new TrainingJobOptions(), CancellationToken.None);

        // The delete won: the upload makes a new sample, and relabels nothing.
        Assert.Null(error);
        Assert.Equal(1, race.Runs);
        Assert.Empty(result!.Relabelled);
        var sample = await database.Context.LabelledSamples.AsNoTracking().SingleAsync();
        Assert.Equal((stored.ImageId, "metal", result.Job.Id), (sample.ImageId, sample.Label, sample.TrainingJobId));
        Assert.NotEqual(stored.Id, sample.Id);
        var again = Assert.IsType<JsonHttpResult<ApiError>>(await SamplesApi.DeleteAsync(stored.Id, database.Context, CancellationToken.None));
        Assert.Equal(StatusCodes.Status404NotFound, again.StatusCode);
        Assert.Single(await database.Context.TrainingJobs.AsNoTracking().Where(j => j.Id == result.Job.Id).ToListAsync());
    }

    [Fact]
    public async Task Submit_AnotherRequestLabelsTheSameImageFirst_RelabelsThatSample()
    {
        // Two requests labelling the same new bytes at once: the later insert broke the unique image_id, a 500.
        using var database = new InMemoryDatabase();
        var glass = Png(1);
        var race = new BeforeSamplesSaved(async other =>
        {
            var image = await other.Images.SingleAsync();
            other.LabelledSamples.Add(new LabelledSample { Id = Guid.CreateVersion7(), ImageId = image.Id, Label = "glass", Origin = SampleOrigin.Feedback });
            await other.SaveChangesAsync();
        }, database);
        await using var db = database.NewContext(race);

        var (result, error) = await NewSubmitter(db).SubmitAsync([File(0, glass)], ["metal"], new TrainingJobOptions(), CancellationToken.None);

        Assert.Null(error);
        Assert.Equal(1, race.Runs);
        Assert.Equal(new TrainingJobSubmitter.RelabelledSample(0, "glass", "metal", PreviousIndex: null), Assert.Single(result!.Relabelled));
        var sample = await database.Context.LabelledSamples.AsNoTracking().SingleAsync();
        Assert.Equal(("metal", SampleOrigin.Upload, result.Job.Id), (sample.Label, sample.Origin, sample.TrainingJobId));
    }

    [Fact]
    public async Task LabelClassification_SampleDeletedBetweenReadAndSave_LabelsItAsANewSample()
    {
        // PUT /v1/classifications/{id}/label raced DELETE /v1/samples/{id} as the upload did: a 500.
        using var database = new InMemoryDatabase();
        await NewSubmitter(database.Context).SubmitAsync([File(0, Png(1))], ["glass"], new TrainingJobOptions(), CancellationToken.None);
        var stored = await database.Context.LabelledSamples.AsNoTracking().SingleAsync();
        var classification = new Classification { Id = Guid.CreateVersion7(), ImageId = stored.ImageId, Status = ClassificationStatus.Completed, PredictedClass = "glass" };
        database.Context.Classifications.Add(classification);
        await database.Context.SaveChangesAsync();
        var race = new BeforeSamplesSaved(async other => Assert.IsType<NoContent>(await SamplesApi.DeleteAsync(stored.Id, other, CancellationToken.None)), database);
        await using var db = database.NewContext(race);
        var registry = new ModelRegistry(db, store, publisher: null!, new ModelOptions(), TimeProvider.System, NullLogger<ModelRegistry>.Instance);

        var result = await TrainingJobsApi.LabelAsync(classification.Id, new TrainingJobsApi.LabelRequest("metal"), db, registry, TimeProvider.System, CancellationToken.None);

        Assert.Equal(1, race.Runs);
        Assert.Equal(StatusCodes.Status200OK, Assert.IsAssignableFrom<IStatusCodeHttpResult>(result).StatusCode);
        var sample = await database.Context.LabelledSamples.AsNoTracking().SingleAsync();
        Assert.Equal(("metal", SampleOrigin.Feedback, (Guid?)classification.Id), (sample.Label, sample.Origin, sample.ClassificationId));
        Assert.NotEqual(stored.Id, sample.Id);
    }

    [Fact]
    public async Task Submit_SampleRaceLostOnEverySave_409SampleConflictAndNothingSaved()
    {
        // Other requests replacing the image's sample before each of the 3 saves: the last race left a 500
        // (DbUpdateConcurrencyException) or, for a unique violation, a 503 saying the database was unavailable.
        using var database = new InMemoryDatabase();
        var glass = Png(1);
        var race = new BeforeSamplesSaved(ReplaceTheSampleAsync, database, times: SampleSaves.Attempts);
        await using var db = database.NewContext(race);

        var (result, error) = await NewSubmitter(db).SubmitAsync([File(0, glass)], ["metal"], new TrainingJobOptions(), CancellationToken.None);

        Assert.Null(result);
        var conflict = Assert.IsType<JsonHttpResult<ApiError>>(error);
        Assert.Equal((StatusCodes.Status409Conflict, SampleSaves.Conflict), (conflict.StatusCode, conflict.Value!.Error));
        Assert.Contains("retry", conflict.Value.Message);
        Assert.Equal(SampleSaves.Attempts, race.Runs);
        Assert.Empty(await database.Context.TrainingJobs.AsNoTracking().ToListAsync());
        Assert.Equal(SampleOrigin.Feedback, (await database.Context.LabelledSamples.AsNoTracking().SingleAsync()).Origin);
    }

    [Fact]
    public async Task LabelClassification_SampleRaceLostOnEverySave_409SampleConflict()
    {
        using var database = new InMemoryDatabase();
        await NewSubmitter(database.Context).SubmitAsync([File(0, Png(1))], ["glass"], new TrainingJobOptions(), CancellationToken.None);
        var imageId = (await database.Context.LabelledSamples.AsNoTracking().SingleAsync()).ImageId;
        var classification = new Classification { Id = Guid.CreateVersion7(), ImageId = imageId, Status = ClassificationStatus.Completed, PredictedClass = "glass" };
        database.Context.Classifications.Add(classification);
        await database.Context.SaveChangesAsync();
        var race = new BeforeSamplesSaved(ReplaceTheSampleAsync, database, times: SampleSaves.Attempts);
        await using var db = database.NewContext(race);
        var registry = new ModelRegistry(db, store, publisher: null!, new ModelOptions(), TimeProvider.System, NullLogger<ModelRegistry>.Instance);

        var result = await TrainingJobsApi.LabelAsync(classification.Id, new TrainingJobsApi.LabelRequest("metal"), db, registry, TimeProvider.System, CancellationToken.None);

        var conflict = Assert.IsType<JsonHttpResult<ApiError>>(result);
        Assert.Equal((StatusCodes.Status409Conflict, SampleSaves.Conflict), (conflict.StatusCode, conflict.Value!.Error));
        Assert.Equal(SampleSaves.Attempts, race.Runs);
        Assert.Equal("glass", (await database.Context.LabelledSamples.AsNoTracking().SingleAsync()).Label);
    }

    [Fact]
    public async Task Submit_CommitWhoseAnswerWasLost_AnsweredWithThatJobAndItsReport()
    {
        // As PostgreSQL's retrying strategy meets it: the commit went through, its answer did not, and the retried INSERT
        // met the request's own new sample (taken for a race). Staged again, the job's own key failed: a 503 "nothing was
        // accepted" for a job that was queued (without its message), and the client's retry queued a second one.
        using var database = new InMemoryDatabase();
        var (glass, paper) = (Png(1), Png(2));
        await NewSubmitter(database.Context).SubmitAsync([File(0, glass)], ["glass"], new TrainingJobOptions(), CancellationToken.None);
        var lost = new AnswerLostAfterCommit();
        await using var db = database.NewContext(lost);

        var (result, error) = await NewSubmitter(db).SubmitAsync([File(0, glass), File(1, paper)], ["metal", "paper"], new TrainingJobOptions(), CancellationToken.None);

        Assert.True(lost.Fired);
        Assert.Null(error);
        // The report is the committed save's: the relabelling it made, not the nothing a fresh read finds.
        Assert.Equal(new TrainingJobSubmitter.RelabelledSample(0, "glass", "metal", PreviousIndex: null), Assert.Single(result!.Relabelled));
        Assert.Equal(2, result.Accepted);
        var jobs = await database.Context.TrainingJobs.AsNoTracking().Select(j => j.Id).ToListAsync();
        Assert.Equal(2, jobs.Count);
        Assert.Contains(result.Job.Id, jobs);
        var samples = await database.Context.LabelledSamples.AsNoTracking().ToListAsync();
        Assert.Equal([("metal", result.Job.Id), ("paper", result.Job.Id)], samples.Select(s => (s.Label, s.TrainingJobId)).Order());
    }

    [Fact]
    public async Task Submit_RetriesRunOutAfterTheCommitWentThrough_AnsweredWithThatJob()
    {
        // PostgreSQL's retrying strategy gave up (the database away for its retries) after a first try whose COMMIT landed:
        // a 503 "nothing was accepted" for a queued job, whose retry by the client queued a second one.
        using var database = new InMemoryDatabase();
        var lost = new RetriesRunOut<TrainingJob>(afterCommit: true);
        await using var db = database.NewContext(lost);

        var (result, error) = await NewSubmitter(db).SubmitAsync([File(0, Png(1)), File(1, Png(2))], ["metal", "paper"], new TrainingJobOptions(), CancellationToken.None);

        Assert.True(lost.Fired);
        Assert.Null(error);
        Assert.Equal(2, result!.Accepted);
        Assert.Equal(result.Job.Id, (await database.Context.TrainingJobs.AsNoTracking().SingleAsync()).Id);
        Assert.All(await database.Context.LabelledSamples.AsNoTracking().ToListAsync(), s => Assert.Equal(result.Job.Id, s.TrainingJobId));
    }

    [Fact]
    public async Task Submit_RetriesRunOutAndNothingCommitted_StillAnOutage()
    {
        using var database = new InMemoryDatabase();
        var lost = new RetriesRunOut<TrainingJob>(afterCommit: false);
        await using var db = database.NewContext(lost);

        var thrown = await Record.ExceptionAsync(() => NewSubmitter(db).SubmitAsync([File(0, Png(1))], ["metal"], new TrainingJobOptions(), CancellationToken.None));

        // The job's row is not there: answered 503 (retry), never 202 for a job that does not exist.
        Assert.True(lost.Fired);
        Assert.True(thrown is not null && DependencyFailures.IsUnavailable(thrown), thrown?.ToString());
        Assert.Empty(await database.Context.TrainingJobs.AsNoTracking().ToListAsync());
    }

    [Fact]
    public async Task Submit_SaveFailsOnSomethingElseThanASample_NotRetriedAsARace()
    {
        // Any failure of a save holding a new sample was taken for a race: here the image went (a foreign key violation),
        // which every retry met again, two wasted round trips before the error.
        using var database = new InMemoryDatabase();
        var race = new BeforeSamplesSaved(other => other.Images.ExecuteDeleteAsync(), database);
        await using var db = database.NewContext(race);

        var failure = await Assert.ThrowsAnyAsync<DbUpdateException>(() =>
            NewSubmitter(db).SubmitAsync([File(0, Png(1))], ["metal"], new TrainingJobOptions(), CancellationToken.None));

        Assert.False(SampleSaves.IsRace(failure));
        Assert.Equal(1, race.Saves);
        Assert.Empty(await database.Context.TrainingJobs.AsNoTracking().ToListAsync());
    }

    /// <summary>Another request deletes the image's sample and labels the image anew: each save of this one then loses a race.</summary>
    private static async Task ReplaceTheSampleAsync(ClassifierDbContext other)
    {
        var image = await other.Images.SingleAsync();
        await other.LabelledSamples.ExecuteDeleteAsync();
        other.LabelledSamples.Add(new LabelledSample { Id = Guid.CreateVersion7(), ImageId = image.Id, Label = "glass", Origin = SampleOrigin.Feedback });
        await other.SaveChangesAsync();
    }

    /// <summary>
    /// Just before the submission saves its samples (the first <paramref name="times"/> saves), another request (on its own
    /// context) does something.
    /// </summary>
    private sealed class BeforeSamplesSaved(Func<ClassifierDbContext, Task> action, InMemoryDatabase database, int times = 1) : SaveChangesInterceptor
    {
        public int Runs { get; private set; }

        /// <summary>Saves of samples tried, raced or not.</summary>
        public int Saves { get; private set; }

        public override async ValueTask<InterceptionResult<int>> SavingChangesAsync(DbContextEventData eventData, InterceptionResult<int> result,
            CancellationToken cancellationToken = default)
        {
            if (!eventData.Context!.ChangeTracker.Entries<LabelledSample>().Any()) return result;
            Saves++;
            if (Runs >= times) return result;
            Runs++;
            await using var other = database.NewContext();
            await action(other);
            return result;
        }
    }

    /// <summary>
    /// The first save of a training job commits, then fails as the retrying strategy's second INSERT of the same rows
    /// does when PostgreSQL names the new sample's image_id index.
    /// </summary>
    private sealed class AnswerLostAfterCommit : SaveChangesInterceptor
    {
        public bool Fired { get; private set; }

        public override ValueTask<int> SavedChangesAsync(SaveChangesCompletedEventData eventData, int result, CancellationToken cancellationToken = default)
        {
            if (Fired || !eventData.Context!.ChangeTracker.Entries<TrainingJob>().Any()) return ValueTask.FromResult(result);
            Fired = true;
            throw new DbUpdateException("An error occurred while saving the entity changes.",
                new SqliteException("SQLite Error 19: 'UNIQUE constraint failed: labelled_samples.image_id'.", 19, 2067));
        }
    }

    // One store and one process's seen hashes per test (xunit makes an instance per test), as one API replica has.
    private readonly MemoryObjectStore store = new();
    private readonly SeenContentHashes seen = new();

    private TrainingJobSubmitter NewSubmitter(ClassifierDbContext db)
    {
        var registry = new ModelRegistry(db, store, publisher: null!, new ModelOptions(), TimeProvider.System, NullLogger<ModelRegistry>.Instance);
        return new TrainingJobSubmitter(db, new ImageIntake(db, store, new UploadOptions(), seen, TimeProvider.System), registry,
            new RefusingSendEndpoints(), new MessagingOptions(), new TrainingSettings(), TimeProvider.System, NullLogger<TrainingJobSubmitter>.Instance);
    }

    private static byte[] Png(byte shade) => TestImages.SolidPng(16, 16, new Rgb24(shade, 90, 200));

    private static UploadedImage File(int index, byte[] bytes) => new(index, $"{index}.png", "image/png", bytes.Length, bytes);
}
