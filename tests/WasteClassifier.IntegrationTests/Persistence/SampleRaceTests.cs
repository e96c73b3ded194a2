using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Diagnostics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using WasteClassifier.Api.Apis;
using WasteClassifier.Api.Submissions;
using WasteClassifier.Components.Models;
using WasteClassifier.Components.Training;
using WasteClassifier.Infrastructure.Messaging;
using WasteClassifier.Infrastructure.Persistence;
using WasteClassifier.Infrastructure.Storage;
using WasteClassifier.IntegrationTests.Fixtures;
using static WasteClassifier.IntegrationTests.Fixtures.PostgresScratch;

namespace WasteClassifier.IntegrationTests.Persistence;

/// <summary>
/// An upload or a label racing another request for the same labelled sample, on the real PostgreSQL: there a race fails
/// with PostgreSQL's errors (a unique violation naming its index, an update of no row), and a save's failed entries are its
/// whole batch, which the SQLite unit tests cannot show.
/// </summary>
public sealed class SampleRaceTests
{
    [IntegrationFact]
    public Task Submit_OnPostgres_SampleDeletedBetweenReadAndSave_TheUploadCreatesANewSample() => WithDatabaseAsync(async (newContext, races, submitter) =>
    {
        var glass = Png(1);
        await using (var db = newContext()) await submitter(db).SubmitAsync([Upload(0, glass)], ["glass"], new TrainingJobOptions(), CancellationToken.None);
        var stored = await SingleSampleAsync(newContext);
        await using var racing = newContext();
        races.Arm(racing, newContext, async other => Assert.IsType<NoContent>(await SamplesApi.DeleteAsync(stored.Id, other, CancellationToken.None)));

        var (result, error) = await submitter(racing).SubmitAsync([Upload(0, glass)], ["metal"], new TrainingJobOptions(), CancellationToken.None);

        // The delete won: the upload makes a new sample, relabels nothing, and its job is saved.
        Assert.Null(error);
        Assert.Equal((1, 2), (races.Runs, races.Saves));
        Assert.Empty(result!.Relabelled);
        var sample = await SingleSampleAsync(newContext);
        Assert.Equal((stored.ImageId, "metal", result.Job.Id), (sample.ImageId, sample.Label, sample.TrainingJobId));
        Assert.NotEqual(stored.Id, sample.Id);
        await using (var db = newContext()) Assert.True(await db.TrainingJobs.AnyAsync(j => j.Id == result.Job.Id));
    });

    [IntegrationFact]
    public Task Submit_OnPostgres_AnotherRequestLabelsTheSameImageFirst_RelabelsThatSample() => WithDatabaseAsync(async (newContext, races, submitter) =>
    {
        await using var racing = newContext();
        races.Arm(racing, newContext, async other =>
        {
            var image = await other.Images.SingleAsync();
            other.LabelledSamples.Add(new LabelledSample { Id = Guid.CreateVersion7(), ImageId = image.Id, Label = "glass", Origin = SampleOrigin.Feedback });
            await other.SaveChangesAsync();
        });

        var (result, error) = await submitter(racing).SubmitAsync([Upload(0, Png(1))], ["metal"], new TrainingJobOptions(), CancellationToken.None);

        // The unique image_id violation, on ix_labelled_samples_image_id, is read as the race it is.
        Assert.Null(error);
        Assert.Equal((1, 2), (races.Runs, races.Saves));
        Assert.Equal(new TrainingJobSubmitter.RelabelledSample(0, "glass", "metal", PreviousIndex: null), Assert.Single(result!.Relabelled));
        var sample = await SingleSampleAsync(newContext);
        Assert.Equal(("metal", SampleOrigin.Upload, result.Job.Id), (sample.Label, sample.Origin, sample.TrainingJobId));
    });

    [IntegrationFact]
    public Task LabelClassification_OnPostgres_SampleDeletedBetweenReadAndSave_LabelsItAsANewSample() => WithDatabaseAsync(async (newContext, races, submitter) =>
    {
        var (classification, stored) = await LabelledClassificationAsync(newContext, submitter);
        await using var racing = newContext();
        races.Arm(racing, newContext, async other => Assert.IsType<NoContent>(await SamplesApi.DeleteAsync(stored.Id, other, CancellationToken.None)));

        var result = await LabelAsync(racing, classification, "metal");

        Assert.Equal(StatusCodes.Status200OK, Assert.IsAssignableFrom<IStatusCodeHttpResult>(result).StatusCode);
        Assert.Equal((1, 2), (races.Runs, races.Saves));
        var sample = await SingleSampleAsync(newContext);
        Assert.Equal(("metal", SampleOrigin.Feedback, (Guid?)classification), (sample.Label, sample.Origin, sample.ClassificationId));
        Assert.NotEqual(stored.Id, sample.Id);
    });

    [IntegrationFact]
    public Task Submit_OnPostgres_SampleRaceLostOnEverySave_409SampleConflictAndNothingSaved() => WithDatabaseAsync(async (newContext, races, submitter) =>
    {
        // The last of the races was a 503 "the database or object store is unavailable" (a unique violation) or a 500.
        await using var racing = newContext();
        races.Arm(racing, newContext, ReplaceTheSampleAsync, times: SampleSaves.Attempts);

        var (result, error) = await submitter(racing).SubmitAsync([Upload(0, Png(1))], ["metal"], new TrainingJobOptions(), CancellationToken.None);

        Assert.Null(result);
        AssertConflict(error);
        Assert.Equal(SampleSaves.Attempts, races.Saves);
        await using var db = newContext();
        Assert.False(await db.TrainingJobs.AnyAsync());
        Assert.Equal(SampleOrigin.Feedback, (await db.LabelledSamples.SingleAsync()).Origin);
    });

    [IntegrationFact]
    public Task LabelClassification_OnPostgres_SampleRaceLostOnEverySave_409SampleConflict() => WithDatabaseAsync(async (newContext, races, submitter) =>
    {
        var (classification, _) = await LabelledClassificationAsync(newContext, submitter);
        await using var racing = newContext();
        races.Arm(racing, newContext, ReplaceTheSampleAsync, times: SampleSaves.Attempts);

        AssertConflict(await LabelAsync(racing, classification, "metal"));

        Assert.Equal(SampleSaves.Attempts, races.Saves);
        Assert.Equal("glass", (await SingleSampleAsync(newContext)).Label);
    });

    [IntegrationFact]
    public Task Submit_OnPostgres_SaveFailsOnSomethingElseThanASample_NotRetriedAsARace() => WithDatabaseAsync(async (newContext, races, submitter) =>
    {
        // The failure's entries on PostgreSQL are the whole batch, new samples included: any failure (here the image went,
        // a foreign key violation) was taken for a race and met again twice before the error.
        await using var racing = newContext();
        races.Arm(racing, newContext, other => other.Images.ExecuteDeleteAsync());

        var failure = await Assert.ThrowsAnyAsync<DbUpdateException>(() =>
            submitter(racing).SubmitAsync([Upload(0, Png(1))], ["metal"], new TrainingJobOptions(), CancellationToken.None));

        Assert.Equal(Npgsql.PostgresErrorCodes.ForeignKeyViolation, Assert.IsType<Npgsql.PostgresException>(failure.InnerException).SqlState);
        Assert.False(SampleSaves.IsRace(failure));
        Assert.Equal(1, races.Saves);
        await using var db = newContext();
        Assert.False(await db.TrainingJobs.AnyAsync());
    });

    private static void AssertConflict(IResult? error)
    {
        var conflict = Assert.IsType<JsonHttpResult<ApiError>>(error);
        Assert.Equal((StatusCodes.Status409Conflict, SampleSaves.Conflict), (conflict.StatusCode, conflict.Value!.Error));
    }

    /// <summary>Another request deletes the image's sample and labels the image anew: each save of this one then loses a race.</summary>
    [IntegrationFact]
    public Task SubmitJob_OnPostgres_ARepeatUnderTheSameKeySavesFirst_OneJobAndItIsTheAnswer() => WithDatabaseAsync(async (newContext, races, submitter) =>
    {
        // Two tries of one request at once: both find no record of the key; the later save fails on PostgreSQL's unique
        // violations (its sample's image, then the key) and is answered with the earlier try's job, not a 500 or a second job.
        var key = new IdempotencyKey("lab", "job-race-0001");
        var glass = Png(1);
        TrainingJobSubmitter.Result? winner = null;
        await using var racing = newContext();
        races.Arm(racing, newContext, async other =>
        {
            IResult? error;
            (winner, error) = await submitter(other).SubmitAsync([Upload(0, glass)], ["glass"], new TrainingJobOptions(), CancellationToken.None, key);
            Assert.Null(error);
        });

        var (result, error) = await submitter(racing).SubmitAsync([Upload(0, glass)], ["glass"], new TrainingJobOptions(), CancellationToken.None, key);

        Assert.Null(error);
        Assert.Equal(1, races.Runs);
        Assert.False(winner!.Replayed);
        Assert.True(result!.Replayed);
        Assert.Equal(winner.Job.Id, result.Job.Id);
        await using var db = newContext();
        Assert.Equal(winner.Job.Id, (await db.TrainingJobs.AsNoTracking().SingleAsync()).Id);
        Assert.Equal(winner.Job.Id, (await db.IdempotentRequests.AsNoTracking().SingleAsync()).TrainingJobId);
        Assert.Equal(winner.Job.Id, (await db.LabelledSamples.AsNoTracking().SingleAsync()).TrainingJobId);
    });

    [IntegrationFact]
    public Task SaveSamples_OnPostgres_ARepeatUnderTheSameKeySavesFirst_AnsweredWithItsSamples() => WithDatabaseAsync(async (newContext, races, submitter) =>
    {
        var key = new IdempotencyKey("lab", "samples-race-0001");
        var glass = Png(1);
        TrainingJobSubmitter.SamplesResult? winner = null;
        await using var racing = newContext();
        races.Arm(racing, newContext, async other =>
        {
            IResult? error;
            (winner, error) = await submitter(other).SaveSamplesAsync([Upload(0, glass)], ["glass"], CancellationToken.None, key);
            Assert.Null(error);
        });

        var (result, error) = await submitter(racing).SaveSamplesAsync([Upload(0, glass)], ["glass"], CancellationToken.None, key);

        Assert.Null(error);
        Assert.True(result!.Replayed);
        Assert.Equal(Assert.Single(winner!.Samples).Id, Assert.Single(result.Samples).Id);
        await using var db = newContext();
        Assert.Equal(winner.Samples[0].Id, (await db.LabelledSamples.AsNoTracking().SingleAsync()).Id);
        Assert.Single(await db.IdempotentRequests.AsNoTracking().ToListAsync());
    });

    [IntegrationFact]
    public Task SubmitJob_OnPostgres_KeyPastItsRetention_IsFreeForANewRequestAndSwept() => WithDatabaseAsync(async (newContext, _, submitter) =>
    {
        var key = new IdempotencyKey("lab", "job-expiry-0001");
        await using (var db = newContext())
        {
            var (first, _) = await submitter(db).SubmitAsync([Upload(0, Png(1))], ["glass"], new TrainingJobOptions(), CancellationToken.None, key);
            // Made 25 hours ago: past the default 24-hour retention, and not yet swept.
            await db.IdempotentRequests.ExecuteUpdateAsync(r => r.SetProperty(x => x.CreatedAt, DateTime.UtcNow.AddHours(-25)));
            Assert.NotNull(first);
        }

        TrainingJobSubmitter.Result? second;
        await using (var db = newContext())
        {
            IResult? error;
            (second, error) = await submitter(db).SubmitAsync([Upload(0, Png(1))], ["metal"], new TrainingJobOptions(), CancellationToken.None, key);
            Assert.Null(error);
        }

        Assert.False(second!.Replayed);
        await using (var db = newContext())
        {
            Assert.Equal(2, await db.TrainingJobs.CountAsync());
            Assert.Equal(second.Job.Id, (await db.IdempotentRequests.AsNoTracking().SingleAsync()).TrainingJobId);
        }
        // The sweep deletes what is past a retention (2 hours here), on created_at's index, and only that.
        await using var services = new ServiceCollection().AddScoped(_ => newContext()).BuildServiceProvider();
        await using (var db = newContext())
            await db.IdempotentRequests.ExecuteUpdateAsync(r => r.SetProperty(x => x.CreatedAt, DateTime.UtcNow.AddHours(-3)));
        var sweeper = new IdempotencySweeper(services.GetRequiredService<IServiceScopeFactory>(),
            new IdempotencyOptions(TimeSpan.FromHours(2)), TimeProvider.System, NullLogger<IdempotencySweeper>.Instance);
        Assert.Equal(1, await sweeper.SweepAsync(CancellationToken.None));
        await using (var db = newContext()) Assert.False(await db.IdempotentRequests.AnyAsync());
    });

    private static async Task ReplaceTheSampleAsync(ClassifierDbContext other)
    {
        var image = await other.Images.SingleAsync();
        await other.LabelledSamples.ExecuteDeleteAsync();
        other.LabelledSamples.Add(new LabelledSample { Id = Guid.CreateVersion7(), ImageId = image.Id, Label = "glass", Origin = SampleOrigin.Feedback });
        await other.SaveChangesAsync();
    }

    /// <summary>An image uploaded under glass, and a completed classification of it.</summary>
    private static async Task<(Guid Classification, LabelledSample Sample)> LabelledClassificationAsync(Func<ClassifierDbContext> newContext,
        Func<ClassifierDbContext, TrainingJobSubmitter> submitter)
    {
        await using var db = newContext();
        await submitter(db).SubmitAsync([Upload(0, Png(1))], ["glass"], new TrainingJobOptions(), CancellationToken.None);
        var stored = await db.LabelledSamples.AsNoTracking().SingleAsync();
        var classification = new Classification { Id = Guid.CreateVersion7(), ImageId = stored.ImageId, Status = ClassificationStatus.Completed, PredictedClass = "glass" };
        db.Classifications.Add(classification);
        await db.SaveChangesAsync();
        return (classification.Id, stored);
    }

    private static async Task<IResult> LabelAsync(ClassifierDbContext db, Guid classification, string label)
    {
        var registry = new ModelRegistry(db, new FileSystemObjectStore(Path.Combine(Path.GetTempPath(), "wc-sample-races-unused")), publisher: null!,
            new ModelOptions(), TimeProvider.System, NullLogger<ModelRegistry>.Instance);
        return await TrainingJobsApi.LabelAsync(classification, new TrainingJobsApi.LabelRequest(label), db, registry, TimeProvider.System, CancellationToken.None);
    }

    private static async Task<LabelledSample> SingleSampleAsync(Func<ClassifierDbContext> newContext)
    {
        await using var db = newContext();
        return await db.LabelledSamples.AsNoTracking().SingleAsync();
    }

    /// <summary>A fresh PostgreSQL database, a folder object store and submitters on it (one process's seen hashes), removed afterwards.</summary>
    private static Task WithDatabaseAsync(Func<Func<ClassifierDbContext>, SampleRaces, Func<ClassifierDbContext, TrainingJobSubmitter>, Task> test)
    {
        var races = new SampleRaces();
        var seen = new SeenContentHashes();
        return PostgresScratch.WithDatabaseAsync("wc-sample-races", races, (newContext, store) =>
        {
            TrainingJobSubmitter NewSubmitter(ClassifierDbContext db)
            {
                var registry = new ModelRegistry(db, store, publisher: null!, new ModelOptions(), TimeProvider.System, NullLogger<ModelRegistry>.Instance);
                return new TrainingJobSubmitter(db, new ImageIntake(db, store, new UploadOptions(), seen, TimeProvider.System), registry,
                    new RefusingSendEndpoints(), new MessagingOptions(), new TrainingSettings(), TimeProvider.System, NullLogger<TrainingJobSubmitter>.Instance);
            }
            return test(newContext, races, NewSubmitter);
        });
    }

    /// <summary>
    /// Just before the armed context saves samples (its first <c>times</c> saves of them), another request, on a context of
    /// its own, does something. Every context of the database has this interceptor; only the armed one is raced.
    /// </summary>
    private sealed class SampleRaces : SaveChangesInterceptor
    {
        private ClassifierDbContext? _target;
        private Func<ClassifierDbContext>? _newContext;
        private Func<ClassifierDbContext, Task>? _race;
        private int _times;

        public int Runs { get; private set; }

        /// <summary>Saves of samples the armed context tried, raced or not.</summary>
        public int Saves { get; private set; }

        public void Arm(ClassifierDbContext target, Func<ClassifierDbContext> newContext, Func<ClassifierDbContext, Task> race, int times = 1) =>
            (_target, _newContext, _race, _times) = (target, newContext, race, times);

        public override async ValueTask<InterceptionResult<int>> SavingChangesAsync(DbContextEventData eventData, InterceptionResult<int> result,
            CancellationToken cancellationToken = default)
        {
            if (eventData.Context != _target || !_target!.ChangeTracker.Entries<LabelledSample>().Any()) return result;
            Saves++;
            if (Runs >= _times) return result;
            Runs++;
            await using var other = _newContext!();
            await _race!(other);
            return result;
        }
    }
}
