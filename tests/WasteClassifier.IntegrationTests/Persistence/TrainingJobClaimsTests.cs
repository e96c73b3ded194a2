using System.Data.Common;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Diagnostics;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;
using WasteClassifier.Cli.Commands;
using WasteClassifier.Components.Models;
using WasteClassifier.Components.Training;
using WasteClassifier.Core.Inference;
using WasteClassifier.Infrastructure.Storage;
using WasteClassifier.Infrastructure.Persistence;
using WasteClassifier.IntegrationTests.Fixtures;
using WasteClassifier.Testing;

namespace WasteClassifier.IntegrationTests.Persistence;

/// <summary>
/// A trainer's claim of a training job on the real PostgreSQL and on SQLite: each claim counts an attempt, and a job whose
/// trainer stopped <c>Training:MaxAttempts</c> times is failed, naming the attempts, instead of being taken over again.
/// </summary>
public sealed class TrainingJobClaimsTests
{
    private static readonly DateTime Now = new(2026, 11, 30, 12, 0, 0, DateTimeKind.Utc);
    private static readonly DateTime StaleBefore = Now.AddSeconds(-120);
    private const int MaxAttempts = 3;

    [IntegrationFact]
    public Task Claim_OnPostgres_EachClaimCountsAnAttempt() => WithDatabaseAsync(DatabaseProviders.Postgres, EachClaimCountsAsync);

    [Fact]
    public Task Claim_OnSqlite_EachClaimCountsAnAttempt() => WithDatabaseAsync(DatabaseProviders.Sqlite, EachClaimCountsAsync);

    [IntegrationFact]
    public Task Claim_OnPostgres_StaleJobClaimedMaxAttemptsTimes_IsFailedNamingTheAttemptsInsteadOfTakenOver() =>
        WithDatabaseAsync(DatabaseProviders.Postgres, GivesUpAfterMaxAttemptsAsync);

    [Fact]
    public Task Claim_OnSqlite_StaleJobClaimedMaxAttemptsTimes_IsFailedNamingTheAttemptsInsteadOfTakenOver() =>
        WithDatabaseAsync(DatabaseProviders.Sqlite, GivesUpAfterMaxAttemptsAsync);

    [IntegrationFact]
    public Task GiveBack_OnPostgres_TrainerStoppingGracefully_QueuesTheJobAndTakesBackItsAttempt() => WithDatabaseAsync(DatabaseProviders.Postgres, GiveBackAsync);

    [Fact]
    public Task GiveBack_OnSqlite_TrainerStoppingGracefully_QueuesTheJobAndTakesBackItsAttempt() => WithDatabaseAsync(DatabaseProviders.Sqlite, GiveBackAsync);

    [IntegrationFact]
    public Task EnterRegistering_OnPostgres_JobFailedAfterMaxAttemptsWhileItsTrainerWasFrozen_IsRefused() =>
        WithDatabaseAsync(DatabaseProviders.Postgres, EnterRegisteringAsync);

    [Fact]
    public Task EnterRegistering_OnSqlite_JobFailedAfterMaxAttemptsWhileItsTrainerWasFrozen_IsRefused() =>
        WithDatabaseAsync(DatabaseProviders.Sqlite, EnterRegisteringAsync);

    [IntegrationFact]
    public Task Exhausted_OnPostgres_JobWithARegisteredCandidate_IsResumedThenEndedFromItsDecisionNeverFailed() =>
        WithDatabaseAsync(DatabaseProviders.Postgres, RegisteredCandidateExhaustedAsync);

    [Fact]
    public Task Exhausted_OnSqlite_JobWithARegisteredCandidate_IsResumedThenEndedFromItsDecisionNeverFailed() =>
        WithDatabaseAsync(DatabaseProviders.Sqlite, RegisteredCandidateExhaustedAsync);

    private static async Task RegisteredCandidateExhaustedAsync(Func<ClassifierDbContext> newContext)
    {
        // Training:MaxAttempts claims, the last of which registered (and promoted) the candidate, then could not write the end.
        var promoted = await AddAsync(newContext, TrainingJobStatus.Running, StaleBefore.AddMinutes(-5), attempts: MaxAttempts, "trainer-a");
        await AddCandidateAsync(newContext, promoted, "job-model-promoted", promotedAt: Now.AddMinutes(-10));
        // The same, stopped between registering the candidate and promoting it.
        var unpromoted = await AddAsync(newContext, TrainingJobStatus.Running, StaleBefore.AddMinutes(-5), attempts: MaxAttempts + TrainingJobRunner.ResumeAttempts,
            "trainer-a");
        await AddCandidateAsync(newContext, unpromoted, "job-model-unpromoted", promotedAt: null);

        // Not failed while its model is active: it is taken over again, to be finished from the candidate.
        await using (var db = newContext()) Assert.Equal(1, await TrainingJobRunner.FailExhaustedAsync(db, jobId: null, StaleBefore, MaxAttempts, Now));
        await using (var db = newContext()) Assert.Equal(1, await TrainingJobRunner.TryClaimAsync(db, promoted, "trainer-b", Now, StaleBefore, MaxAttempts, CancellationToken.None));
        Assert.Equal((TrainingJobStatus.Running, MaxAttempts + 1, "trainer-b"), await ReadAsync(newContext, promoted));

        // Past the resumes it may take, it ends from the recorded decision; a promotion not carried out is said so.
        await using (var db = newContext())
        {
            var row = await db.TrainingJobs.AsNoTracking().SingleAsync(j => j.Id == unpromoted);
            Assert.Equal((TrainingJobStatus.Succeeded, "job-model-unpromoted", (string?)null, (string?)null), (row.Status, row.CandidateVersion, row.Stage, row.Error));
            Assert.Contains("\"promoted\":false", row.DecisionJson);
            Assert.Contains("passed the promotion gate", row.DecisionJson);
            Assert.Contains("POST /v1/models/job-model-unpromoted/promote", row.DecisionJson);
        }
        await using (var db = newContext())
            await db.TrainingJobs.Where(j => j.Id == promoted).ExecuteUpdateAsync(s => s.SetProperty(j => j.Attempts, MaxAttempts + TrainingJobRunner.ResumeAttempts)
                .SetProperty(j => j.HeartbeatAt, StaleBefore.AddMinutes(-1)));
        await using (var db = newContext()) Assert.Equal(0, await TrainingJobRunner.TryClaimAsync(db, promoted, "trainer-c", Now, StaleBefore, MaxAttempts, CancellationToken.None));
        await using (var db = newContext()) Assert.Equal(1, await TrainingJobRunner.FailExhaustedAsync(db, promoted, StaleBefore, MaxAttempts, Now));
        await using (var db = newContext())
        {
            var row = await db.TrainingJobs.AsNoTracking().SingleAsync(j => j.Id == promoted);
            Assert.Equal((TrainingJobStatus.Succeeded, "job-model-promoted", Judged.DecisionJson), (row.Status, row.CandidateVersion, row.DecisionJson));
        }
    }

    [IntegrationFact]
    public Task Claim_OnPostgres_JobWhoseCandidateIsRegistered_StaysRegisteringSoNoCancelIsAccepted() =>
        WithDatabaseAsync(DatabaseProviders.Postgres, ClaimKeepsRegisteringAsync);

    [Fact]
    public Task Claim_OnSqlite_JobWhoseCandidateIsRegistered_StaysRegisteringSoNoCancelIsAccepted() =>
        WithDatabaseAsync(DatabaseProviders.Sqlite, ClaimKeepsRegisteringAsync);

    private static async Task ClaimKeepsRegisteringAsync(Func<ClassifierDbContext> newContext)
    {
        // The API answers a cancel request 409 while the stage is registering: between the takeover and the resume too.
        var registered = await AddAsync(newContext, TrainingJobStatus.Running, StaleBefore.AddMinutes(-5), attempts: 1, "dead-trainer");
        await AddCandidateAsync(newContext, registered, "job-model", promotedAt: null);
        // Marked registering, but its trainer died before the candidate was registered: it is trained again, from features.
        var unregistered = await AddAsync(newContext, TrainingJobStatus.Running, StaleBefore.AddMinutes(-5), attempts: 1, "dead-trainer");
        await using (var db = newContext())
            await db.TrainingJobs.Where(j => j.Id == unregistered).ExecuteUpdateAsync(s => s.SetProperty(j => j.Stage, TrainingStages.Registering));

        await using (var db = newContext()) Assert.Equal(1, await TrainingJobRunner.TryClaimAsync(db, registered, "trainer-b", Now, StaleBefore, MaxAttempts, CancellationToken.None));
        await using (var db = newContext())
            Assert.Equal(TrainingStages.Registering, await db.TrainingJobs.Where(j => j.Id == registered).Select(j => j.Stage).SingleAsync());
        await using (var db = newContext())
            await db.TrainingJobs.Where(j => j.Id == registered).ExecuteUpdateAsync(s => s.SetProperty(j => j.Status, TrainingJobStatus.Succeeded));
        await using (var db = newContext()) Assert.Equal(1, await TrainingJobRunner.TryClaimAsync(db, unregistered, "trainer-b", Now, StaleBefore, MaxAttempts, CancellationToken.None));
        await using (var db = newContext())
            Assert.Equal(TrainingStages.Features, await db.TrainingJobs.Where(j => j.Id == unregistered).Select(j => j.Stage).SingleAsync());
    }

    [IntegrationFact]
    public Task RegisterCandidate_OnPostgres_TrainerTakenOverWhileUploading_RecordsNothingAndDeletesItsFiles() =>
        WithDatabaseAsync(DatabaseProviders.Postgres, RegisterCandidateAfterTakeoverAsync);

    [Fact]
    public Task RegisterCandidate_OnSqlite_TrainerTakenOverWhileUploading_RecordsNothingAndDeletesItsFiles() =>
        WithDatabaseAsync(DatabaseProviders.Sqlite, RegisterCandidateAfterTakeoverAsync);

    private static async Task RegisterCandidateAfterTakeoverAsync(Func<ClassifierDbContext> newContext)
    {
        // Trainer A entered the registering step, then stalled uploading its candidate; its heartbeat went stale and trainer B
        // took the job over, to train it again.
        var id = await TakenOverWhileRegisteringAsync(newContext);
        await WithStoreFolderAsync(async root =>
        {
            var store = new FileSystemObjectStore(root);
            // A's upload ends: nothing is recorded, its files go, and the job is left to B.
            await using (var db = newContext())
                Assert.False(await TrainingJobRunner.RegisterCandidateAsync(Registry(db, store), id, "trainer-a", attempt: 1, Card("candidate-a"), HeadFiles, "{}", new FixedClock(Now)));
            Assert.Empty(FilesUnder(root, "models/candidate-a"));
            await using (var db = newContext())
            {
                Assert.False(await db.Models.AnyAsync(m => m.TrainingJobId == id));
                var row = await db.TrainingJobs.AsNoTracking().SingleAsync(j => j.Id == id);
                Assert.Equal(("trainer-b", 2, (string?)null, (DateTime?)Now), (row.TrainerId, row.Attempts, row.CandidateVersion, row.HeartbeatAt));
            }

            // B, which holds the claim, registers its own: the job's one candidate, named on the job.
            await using (var db = newContext())
                Assert.True(await TrainingJobRunner.RegisterCandidateAsync(Registry(db, store), id, "trainer-b", attempt: 2, Card("candidate-b"), HeadFiles, "{}", new FixedClock(Now)));
            await using (var db = newContext())
            {
                Assert.Equal(["candidate-b"], await db.Models.Where(m => m.TrainingJobId == id).Select(m => m.Version).ToListAsync());
                Assert.Equal("candidate-b", await db.TrainingJobs.Where(j => j.Id == id).Select(j => j.CandidateVersion).SingleAsync());
            }
            Assert.NotNull(await store.GetAsync(await PrefixOfAsync(newContext, "candidate-b") + "head.onnx", CancellationToken.None));
        });
    }

    [IntegrationFact]
    public Task RegisterCandidate_OnPostgres_LostClaimUnderARegisteredVersionsName_IsRefusedBeforeItOverwritesThatModelsFiles() =>
        WithDatabaseAsync(DatabaseProviders.Postgres, RegisterCandidateUnderARegisteredNameAsync);

    [Fact]
    public Task RegisterCandidate_OnSqlite_LostClaimUnderARegisteredVersionsName_IsRefusedBeforeItOverwritesThatModelsFiles() =>
        WithDatabaseAsync(DatabaseProviders.Sqlite, RegisterCandidateUnderARegisteredNameAsync);

    private static async Task RegisterCandidateUnderARegisteredNameAsync(Func<ClassifierDbContext> newContext)
    {
        // Trainer B took the job over and registered its candidate; trainer A, which lost its claim while uploading, registers
        // one of the same name.
        var id = await TakenOverWhileRegisteringAsync(newContext);
        await WithStoreFolderAsync(async root =>
        {
            var store = new FileSystemObjectStore(root);
            byte[] registeredHead = [9, 9, 9];
            await using (var db = newContext())
                Assert.True(await TrainingJobRunner.RegisterCandidateAsync(Registry(db, store), id, "trainer-b", attempt: 2, Card("same-name"),
                    new Dictionary<string, byte[]> { ["head.onnx"] = registeredHead }, "{}", new FixedClock(Now)));

            Exception? refused;
            await using (var db = newContext())
                refused = await Record.ExceptionAsync(() =>
                    TrainingJobRunner.RegisterCandidateAsync(Registry(db, store), id, "trainer-a", attempt: 1, Card("same-name"), HeadFiles, "{}", new FixedClock(Now)));

            Assert.Equal(registeredHead, await store.GetAsync(await PrefixOfAsync(newContext, "same-name") + "head.onnx", CancellationToken.None));
            Assert.Equal("model version 'same-name' is already registered; its files were left as they are", Assert.IsType<InvalidOperationException>(refused).Message);
            await using (var db = newContext())
            {
                var row = await db.TrainingJobs.AsNoTracking().SingleAsync(j => j.Id == id);
                Assert.Equal(("trainer-b", "same-name"), (row.TrainerId, row.CandidateVersion));
            }
        });
    }

    [IntegrationFact]
    public Task RegisterCandidate_OnPostgres_UploadOutlastingStaleAfter_StoresTheHeartbeatOfItsEndNotItsStart() =>
        WithDatabaseAsync(DatabaseProviders.Postgres, RegisterCandidateAfterSlowUploadAsync);

    [Fact]
    public Task RegisterCandidate_OnSqlite_UploadOutlastingStaleAfter_StoresTheHeartbeatOfItsEndNotItsStart() =>
        WithDatabaseAsync(DatabaseProviders.Sqlite, RegisterCandidateAfterSlowUploadAsync);

    private static async Task RegisterCandidateAfterSlowUploadAsync(Func<ClassifierDbContext> newContext)
    {
        // The upload takes longer than Training:StaleAfterSeconds: the heartbeat stored with the candidate must be that of the
        // commit, or a claim (or sweeper) reading the row right after it finds the job stale and takes it over or fails it.
        var id = await AddAsync(newContext, TrainingJobStatus.Running, Now, attempts: 1, "trainer-a");
        await using (var db = newContext()) Assert.True(await TrainingJobRunner.EnterRegisteringAsync(db, id, "trainer-a", Judged));
        var clock = new FixedClock(Now);
        await WithStoreFolderAsync(async root =>
        {
            var store = new SlowPuts(new FileSystemObjectStore(root), clock, TimeSpan.FromMinutes(5));
            await using (var db = newContext())
                Assert.True(await TrainingJobRunner.RegisterCandidateAsync(Registry(db, store), id, "trainer-a", attempt: 1, Card("candidate-slow"), HeadFiles, "{}", clock));
            await using (var db = newContext())
            {
                var row = await db.TrainingJobs.AsNoTracking().SingleAsync(j => j.Id == id);
                Assert.Equal(("candidate-slow", (DateTime?)Now.AddMinutes(10)), (row.CandidateVersion, row.HeartbeatAt));
            }
        });
    }

    [IntegrationFact]
    public Task RegisterFenced_OnPostgres_SameNameRegisteredWhileUploading_KeepsTheWinnersFilesAndDeletesItsOwn() =>
        WithDatabaseAsync(DatabaseProviders.Postgres, RegisterSameNameAtOnceAsync);

    [Fact]
    public Task RegisterFenced_OnSqlite_SameNameRegisteredWhileUploading_KeepsTheWinnersFilesAndDeletesItsOwn() =>
        WithDatabaseAsync(DatabaseProviders.Sqlite, RegisterSameNameAtOnceAsync);

    private static async Task RegisterSameNameAtOnceAsync(Func<ClassifierDbContext> newContext)
    {
        // Two registrations of one name pass the check together: B uploads, A uploads, B records its row, A's is refused. A
        // starts once B is in its transaction (on SQLite, B's would otherwise wait for A's, which waits for B).
        await WithStoreFolderAsync(async root =>
        {
            var store = new FileSystemObjectStore(root);
            var bInTransaction = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var aUploaded = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var bRecorded = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            byte[] headA = [1, 1, 1], headB = [2, 2, 2];
            var a = Task.Run(async () =>
            {
                await bInTransaction.Task;
                await using var db = newContext();
                return await Record.ExceptionAsync(() => Registry(db, new AfterPuts(store, 2, aUploaded)).RegisterFencedAsync(Card("same-time"),
                    new Dictionary<string, byte[]> { ["head.onnx"] = headA }, "trained", null, "{}", ModelStatus.Candidate, async _ =>
                    {
                        await bRecorded.Task;
                        return true;
                    }, CancellationToken.None));
            });
            await using (var db = newContext())
                Assert.NotNull(await Registry(db, store).RegisterFencedAsync(Card("same-time"), new Dictionary<string, byte[]> { ["head.onnx"] = headB },
                    "trained", null, "{}", ModelStatus.Candidate, async _ =>
                    {
                        bInTransaction.TrySetResult();
                        await aUploaded.Task.WaitAsync(TimeSpan.FromSeconds(30));
                        return true;
                    }, CancellationToken.None));
            bRecorded.SetResult();

            var refused = await a.WaitAsync(TimeSpan.FromSeconds(60));
            // A overwrote B's files under the version's one prefix; B's row, which won, served A's head.
            var prefix = await PrefixOfAsync(newContext, "same-time");
            Assert.Equal(headB, await store.GetAsync(prefix + "head.onnx", CancellationToken.None));
            Assert.Equal("model version 'same-time' was registered meanwhile; its files were left as they are", Assert.IsType<InvalidOperationException>(refused).Message);
            Assert.Equal([prefix + "card.json", prefix + "head.onnx"], FilesUnder(root, "models/same-time"));
        });
    }

    [IntegrationFact]
    public Task Register_OnPostgres_SameVersionImportedTwiceAtOnce_KeepsTheWinnersFilesAndDeletesTheLosers() =>
        WithDatabaseAsync(DatabaseProviders.Postgres, RegisterUnfencedAtOnceAsync);

    [Fact]
    public Task Register_OnSqlite_SameVersionImportedTwiceAtOnce_KeepsTheWinnersFilesAndDeletesTheLosers() =>
        WithDatabaseAsync(DatabaseProviders.Sqlite, RegisterUnfencedAtOnceAsync);

    [IntegrationFact]
    public Task ImportCommand_OnPostgres_SameVersionImportedMeanwhile_AlreadyRegisteredUsageError() =>
        WithDatabaseAsync(DatabaseProviders.Postgres, db => RegisterUnfencedAtOnceAsync(db, throughImportCommand: true));

    [Fact]
    public Task ImportCommand_OnSqlite_SameVersionImportedMeanwhile_AlreadyRegisteredUsageError() =>
        WithDatabaseAsync(DatabaseProviders.Sqlite, db => RegisterUnfencedAtOnceAsync(db, throughImportCommand: true));

    private static async Task RegisterUnfencedAtOnceAsync(Func<ClassifierDbContext> newContext) => await RegisterUnfencedAtOnceAsync(newContext, throughImportCommand: false);

    /// <param name="throughImportCommand">A registers as `wastectl models import` does: the race is its usage error, not a stack trace.</param>
    private static async Task RegisterUnfencedAtOnceAsync(Func<ClassifierDbContext> newContext, bool throughImportCommand)
    {
        // Two imports of one version (wastectl models import) pass their checks together: B uploads, A uploads, B records its
        // row, A's is refused.
        await WithStoreFolderAsync(async root =>
        {
            var store = new FileSystemObjectStore(root);
            var bUploaded = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var aUploaded = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var bRecorded = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            byte[] headA = [1, 1, 1], headB = [2, 2, 2];
            var a = Task.Run(async () =>
            {
                await bUploaded.Task;
                await using var db = newContext();
                var registry = Registry(db, new AfterPuts(store, 2, aUploaded, then: bRecorded.Task));
                var files = new Dictionary<string, byte[]> { ["head.onnx"] = headA };
                return await Record.ExceptionAsync(() => throughImportCommand
                    ? ModelsImportCommand.RegisterAsync(registry, Card("imported-twice"), files)
                    : registry.RegisterAsync(Card("imported-twice"), files, "imported", null, null, ModelStatus.Candidate, CancellationToken.None));
            });
            await using (var db = newContext())
                await Registry(db, new AfterPuts(store, 2, bUploaded, then: aUploaded.Task)).RegisterAsync(Card("imported-twice"),
                    new Dictionary<string, byte[]> { ["head.onnx"] = headB }, "imported", null, null, ModelStatus.Candidate, CancellationToken.None);
            bRecorded.SetResult();

            var refused = await a.WaitAsync(TimeSpan.FromSeconds(60));
            // Under the version's one prefix, A overwrote B's files, and B's row served A's head; A's refused row left its own.
            var prefix = await PrefixOfAsync(newContext, "imported-twice");
            Assert.Equal(headB, await store.GetAsync(prefix + "head.onnx", CancellationToken.None));
            if (throughImportCommand)
                Assert.Equal("model version 'imported-twice' is already registered", Assert.IsType<UsageException>(refused).Message);
            else
                Assert.Equal("model version 'imported-twice' was registered meanwhile; its files were left as they are", Assert.IsType<InvalidOperationException>(refused).Message);
            Assert.Equal([prefix + "card.json", prefix + "head.onnx"], FilesUnder(root, "models/imported-twice"));
        });
    }

    [IntegrationFact]
    public Task EnsureBundled_OnPostgres_TwoProcessesStartingAtOnce_BothStartWithOneRow() =>
        WithDatabaseAsync(DatabaseProviders.Postgres, EnsureBundledAtOnceAsync);

    [Fact]
    public Task EnsureBundled_OnSqlite_TwoProcessesStartingAtOnce_BothStartWithOneRow() =>
        WithDatabaseAsync(DatabaseProviders.Sqlite, EnsureBundledAtOnceAsync);

    private static async Task EnsureBundledAtOnceAsync(Func<ClassifierDbContext> newContext)
    {
        // Every process registers the bundled model at start; two pass the check together and the later row is refused: that
        // process must start all the same.
        var bundled = Directory.CreateTempSubdirectory("wc-bundled-");
        try
        {
            await File.WriteAllBytesAsync(Path.Combine(bundled.FullName, "head.onnx"), [1, 2, 3]);
            await File.WriteAllTextAsync(Path.Combine(bundled.FullName, ModelCard.FileName),
                System.Text.Json.JsonSerializer.Serialize(Card("bundled-1"), ModelCard.JsonOptions));
            var options = new ModelOptions { Directory = bundled.FullName };
            await WithStoreFolderAsync(async root =>
            {
                var store = new FileSystemObjectStore(root);
                var bUploaded = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                var aUploaded = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                var bRecorded = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                var a = Task.Run(async () =>
                {
                    await bUploaded.Task;
                    await using var db = newContext();
                    await Registry(db, new AfterPuts(store, 2, aUploaded, then: bRecorded.Task), options).EnsureBundledAsync(CancellationToken.None);
                });
                await using (var db = newContext())
                    await Registry(db, new AfterPuts(store, 2, bUploaded, then: aUploaded.Task), options).EnsureBundledAsync(CancellationToken.None);
                bRecorded.SetResult();
                await a.WaitAsync(TimeSpan.FromSeconds(60));

                var prefix = await PrefixOfAsync(newContext, "bundled-1");
                Assert.Equal([prefix + "card.json", prefix + "head.onnx"], FilesUnder(root, "models/bundled-1"));
            });
        }
        finally
        {
            bundled.Delete(recursive: true);
        }
    }

    [IntegrationFact]
    public Task RegisterFenced_OnPostgres_DatabaseFailingAfterTheUpload_DeletesItsFilesAndThrows() =>
        WithDatabaseAsync(DatabaseProviders.Postgres, RegisterWhileTheDatabaseFailsAsync);

    [Fact]
    public Task RegisterFenced_OnSqlite_DatabaseFailingAfterTheUpload_DeletesItsFilesAndThrows() =>
        WithDatabaseAsync(DatabaseProviders.Sqlite, RegisterWhileTheDatabaseFailsAsync);

    private static async Task RegisterWhileTheDatabaseFailsAsync(Func<ClassifierDbContext> newContext)
    {
        await WithStoreFolderAsync(async root =>
        {
            var store = new FileSystemObjectStore(root);
            Exception? failed;
            // The transaction fails after the upload: here a statement the database refuses, in the fence.
            await using (var db = newContext())
                failed = await Record.ExceptionAsync(() => Registry(db, store).RegisterFencedAsync(Card("db-fails"), HeadFiles, "trained", null, "{}",
                    ModelStatus.Candidate, async context =>
                    {
                        await context.Database.ExecuteSqlRawAsync("UPDATE no_such_table SET x = 1");
                        return true;
                    }, CancellationToken.None));

            // The database's own error, thrown on.
            Assert.IsAssignableFrom<System.Data.Common.DbException>(failed);
            // Left behind, with no row naming them: nothing would ever delete them.
            Assert.Empty(FilesUnder(root, "models/db-fails"));
            await using (var db = newContext())
                Assert.False(await db.Models.AnyAsync(m => m.Version == "db-fails"));
        });
    }

    [IntegrationFact]
    public Task RegisterCandidate_OnPostgres_CommitsAnswerLostThenRetried_RegisteredWithItsFiles() =>
        RegisterWhenTheCommitsAnswerIsLostAsync(DatabaseProviders.Postgres);

    [Fact]
    public Task RegisterCandidate_OnSqlite_FailureAfterTheCommit_RegisteredWithItsFiles() => RegisterWhenTheCommitsAnswerIsLostAsync(DatabaseProviders.Sqlite);

    private static async Task RegisterWhenTheCommitsAnswerIsLostAsync(string provider)
    {
        // The commit went through, then the connection dropped before its answer: PostgreSQL's strategy tries again (the fence
        // still passes: same trainer, attempt, running), SQLite's failure is thrown. The row is this call's; its files stay.
        var lost = new CommitAnswerLostOnce(provider);
        await ProviderDatabases.WithDatabaseAsync(provider, "wc-training-claims", async newContext =>
        {
            var id = await AddAsync(newContext, TrainingJobStatus.Running, Now, attempts: 1, "trainer-a");
            await using (var db = newContext()) Assert.True(await TrainingJobRunner.EnterRegisteringAsync(db, id, "trainer-a", Judged));
            await WithStoreFolderAsync(async root =>
            {
                var store = new FileSystemObjectStore(root);
                await using (var db = newContext())
                    Assert.True(await TrainingJobRunner.RegisterCandidateAsync(Registry(db, store), id, "trainer-a", attempt: 1, Card("answer-lost"), HeadFiles, "{}",
                        new FixedClock(Now)));

                Assert.True(lost.Fired);
                var prefix = await PrefixOfAsync(newContext, "answer-lost");
                // Deleted as a failed registration's: the job, resumed from its candidate, served a model with no files.
                Assert.Equal([prefix + "card.json", prefix + "head.onnx"], FilesUnder(root, "models/answer-lost"));
                await using (var db = newContext())
                    Assert.Equal("answer-lost", await db.TrainingJobs.Where(j => j.Id == id).Select(j => j.CandidateVersion).SingleAsync());
            });
        }, lost);
    }

    [IntegrationFact]
    public Task RegisterFenced_OnPostgres_CommitSentThenItsOutcomeUnknown_KeepsItsFilesAndThrows() =>
        RegisterWhenTheCommitsOutcomeIsUnknownAsync(DatabaseProviders.Postgres);

    [Fact]
    public Task RegisterFenced_OnSqlite_CommitSentThenItsOutcomeUnknown_KeepsItsFilesAndThrows() =>
        RegisterWhenTheCommitsOutcomeIsUnknownAsync(DatabaseProviders.Sqlite);

    private static async Task RegisterWhenTheCommitsOutcomeIsUnknownAsync(string provider)
    {
        // The connection broke while the COMMIT was pending on the server (a stalled sync standby, a slow fsync): the read that
        // follows finds no row, yet the COMMIT may still land. Here it never does; the files must be kept all the same.
        var broken = new ConnectionBrokenAtCommit();
        await ProviderDatabases.WithDatabaseAsync(provider, "wc-training-claims", async newContext =>
        {
            await WithStoreFolderAsync(async root =>
            {
                var store = new FileSystemObjectStore(root);
                Exception? failed;
                await using (var db = newContext())
                    failed = await Record.ExceptionAsync(() => Registry(db, store).RegisterFencedAsync(Card("pending"), HeadFiles, "trained", null, "{}",
                        ModelStatus.Candidate, _ => Task.FromResult(true), CancellationToken.None));

                Assert.Same(broken.Failure, failed);
                // Deleted, the COMMIT that lands later leaves a registered row without files.
                Assert.Equal(2, FilesUnder(root, "models/pending").Count);
                await using (var db = newContext())
                    Assert.False(await db.Models.AnyAsync(m => m.Version == "pending"));
            });
        }, broken);
    }

    [IntegrationFact]
    public async Task RegisterFenced_OnPostgres_CommitSentThenRetriedAndFencedOut_KeepsItsFiles()
    {
        // The first try's COMMIT breaks its connection (transient: tried again); the second finds no row and its fence says
        // no (the job taken over meanwhile). The first COMMIT may still land: its files must be kept.
        var broken = new ConnectionBrokenAtCommit(transient: true);
        await ProviderDatabases.WithDatabaseAsync(DatabaseProviders.Postgres, "wc-training-claims", async newContext =>
        {
            await WithStoreFolderAsync(async root =>
            {
                var fences = 0;
                await using (var db = newContext())
                    Assert.Null(await Registry(db, new FileSystemObjectStore(root)).RegisterFencedAsync(Card("fenced-out"), HeadFiles, "trained", null, "{}",
                        ModelStatus.Candidate, _ => Task.FromResult(++fences == 1), CancellationToken.None));

                Assert.Equal(2, fences);
                Assert.Equal(2, FilesUnder(root, "models/fenced-out").Count);
            });
        }, broken);
    }

    [IntegrationFact]
    public Task RegisterFenced_OnPostgres_RefusedRowThenTheDatabaseUnreadable_KeepsItsFilesAndThrowsTheRefusal() =>
        RegisterWhenTheCheckFailsAsync(DatabaseProviders.Postgres);

    [Fact]
    public Task RegisterFenced_OnSqlite_RefusedRowThenTheDatabaseUnreadable_KeepsItsFilesAndThrowsTheRefusal() =>
        RegisterWhenTheCheckFailsAsync(DatabaseProviders.Sqlite);

    private static async Task RegisterWhenTheCheckFailsAsync(string provider)
    {
        // The save fails, then the database cannot be read: whether a row names the files is unknown, so they are kept, and
        // the save's failure is thrown, not the read's.
        var failing = new SaveThenReadsFail();
        await ProviderDatabases.WithDatabaseAsync(provider, "wc-training-claims", async newContext =>
        {
            await WithStoreFolderAsync(async root =>
            {
                var store = new FileSystemObjectStore(root);
                Exception? failed;
                await using (var db = newContext())
                    failed = await Record.ExceptionAsync(() => Registry(db, store).RegisterFencedAsync(Card("unknown"), HeadFiles, "trained", null, "{}",
                        ModelStatus.Candidate, _ => Task.FromResult(true), CancellationToken.None));

                Assert.Same(failing.SaveFailure, failed);
                Assert.Equal(2, FilesUnder(root, "models/unknown").Count);
            });
        }, failing);
    }

    /// <summary>The keys of the files under <paramref name="prefix"/> in the folder store at <paramref name="root"/>, in order.</summary>
    private static List<string> FilesUnder(string root, string prefix)
    {
        var folder = Path.Combine(root, prefix);
        return Directory.Exists(folder)
            ? Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories).Select(f => Path.GetRelativePath(root, f).Replace('\\', '/')).Order(StringComparer.Ordinal).ToList()
            : [];
    }

    private static async Task<string> PrefixOfAsync(Func<ClassifierDbContext> newContext, string version)
    {
        await using var db = newContext();
        return await db.Models.Where(m => m.Version == version).Select(m => m.ArtifactPrefix).SingleAsync();
    }

    /// <summary>Trainer A entered the registering step, then stalled; its heartbeat went stale and trainer B took the job over.</summary>
    private static async Task<Guid> TakenOverWhileRegisteringAsync(Func<ClassifierDbContext> newContext)
    {
        var id = await AddAsync(newContext, TrainingJobStatus.Running, StaleBefore.AddMinutes(-5), attempts: 1, "trainer-a");
        await using (var db = newContext()) Assert.True(await TrainingJobRunner.EnterRegisteringAsync(db, id, "trainer-a", Judged));
        await using (var db = newContext()) Assert.Equal(1, await TrainingJobRunner.TryClaimAsync(db, id, "trainer-b", Now, StaleBefore, MaxAttempts, CancellationToken.None));
        return id;
    }

    /// <summary>Runs <paramref name="test"/> with a fresh folder for a <see cref="FileSystemObjectStore"/>, removed afterwards.</summary>
    private static async Task WithStoreFolderAsync(Func<string, Task> test)
    {
        var root = Path.Combine(Path.GetTempPath(), $"wc-register-{Guid.NewGuid():N}");
        try
        {
            await test(root);
        }
        finally
        {
            if (Directory.Exists(root)) Directory.Delete(root, recursive: true);
        }
    }

    private sealed class FixedClock(DateTime now) : TimeProvider
    {
        public DateTime Now { get; set; } = now;

        public override DateTimeOffset GetUtcNow() => new(Now);
    }

    /// <summary>A store each of whose writes takes <paramref name="by"/> on <paramref name="clock"/>.</summary>
    private sealed class SlowPuts(IObjectStore inner, FixedClock clock, TimeSpan by) : IObjectStore
    {
        public Task EnsureReadyAsync(CancellationToken cancellationToken) => inner.EnsureReadyAsync(cancellationToken);

        public async Task PutAsync(string key, ReadOnlyMemory<byte> content, string contentType, CancellationToken cancellationToken)
        {
            await inner.PutAsync(key, content, contentType, cancellationToken);
            clock.Now += by;
        }

        public Task<byte[]?> GetAsync(string key, CancellationToken cancellationToken) => inner.GetAsync(key, cancellationToken);

        public Task<byte[]?> GetAsync(string key, long maxBytes, CancellationToken cancellationToken) => inner.GetAsync(key, maxBytes, cancellationToken);

        public Task DeleteAsync(string key, CancellationToken cancellationToken) => inner.DeleteAsync(key, cancellationToken);

        public Task CheckAsync(CancellationToken cancellationToken) => inner.CheckAsync(cancellationToken);
    }

    /// <summary>
    /// A store that signals <paramref name="done"/> once <paramref name="puts"/> writes have finished, and then, if given,
    /// finishes that write only once <paramref name="then"/> has.
    /// </summary>
    private sealed class AfterPuts(IObjectStore inner, int puts, TaskCompletionSource done, Task? then = null) : IObjectStore
    {
        private int _puts;

        public Task EnsureReadyAsync(CancellationToken cancellationToken) => inner.EnsureReadyAsync(cancellationToken);

        public async Task PutAsync(string key, ReadOnlyMemory<byte> content, string contentType, CancellationToken cancellationToken)
        {
            await inner.PutAsync(key, content, contentType, cancellationToken);
            if (Interlocked.Increment(ref _puts) != puts) return;
            done.SetResult();
            if (then is not null) await then.WaitAsync(TimeSpan.FromSeconds(30), cancellationToken);
        }

        public Task<byte[]?> GetAsync(string key, CancellationToken cancellationToken) => inner.GetAsync(key, cancellationToken);

        public Task<byte[]?> GetAsync(string key, long maxBytes, CancellationToken cancellationToken) => inner.GetAsync(key, maxBytes, cancellationToken);

        public Task DeleteAsync(string key, CancellationToken cancellationToken) => inner.DeleteAsync(key, cancellationToken);

        public Task CheckAsync(CancellationToken cancellationToken) => inner.CheckAsync(cancellationToken);
    }

    /// <summary>
    /// After the first commit of a transaction that recorded a model, throws what a connection reset while reading the
    /// commit's answer throws: on PostgreSQL a transient NpgsqlException, which the retrying strategy answers by running the
    /// registration again; on SQLite, which does not retry, the same reset as an IOException.
    /// </summary>
    private sealed class CommitAnswerLostOnce(string provider) : DbTransactionInterceptor
    {
        private int _fired;

        public bool Fired => _fired == 1;

        public override Task TransactionCommittedAsync(DbTransaction transaction, TransactionEndEventData eventData, CancellationToken cancellationToken = default)
        {
            if (eventData.Context?.ChangeTracker.Entries<ModelRecord>().Any() == true && Interlocked.Exchange(ref _fired, 1) == 0)
            {
                var reset = new IOException("Connection reset by peer");
                throw provider == DatabaseProviders.Postgres ? new NpgsqlException("Exception while reading from stream", reset) : reset;
            }
            return Task.CompletedTask;
        }
    }

    /// <summary>
    /// Fails the first commit of a transaction that recorded a model with a broken connection, by default one no strategy retries;
    /// the transaction is rolled back, as a COMMIT that never reached the server (its outcome unknown to the caller).
    /// </summary>
    private sealed class ConnectionBrokenAtCommit(bool transient = false) : DbTransactionInterceptor
    {
        private int _fired;

        /// <summary>The failure: an IOException, or with <c>transient</c> a transient NpgsqlException that PostgreSQL's strategy retries.</summary>
        public Exception Failure { get; } = transient
            ? new NpgsqlException("Exception while reading from stream", new IOException("the connection broke while the commit was pending"))
            : new IOException("the connection broke while the commit was pending");

        public override ValueTask<InterceptionResult> TransactionCommittingAsync(DbTransaction transaction, TransactionEventData eventData,
            InterceptionResult result, CancellationToken cancellationToken = default) =>
            eventData.Context?.ChangeTracker.Entries<ModelRecord>().Any() == true && Interlocked.Exchange(ref _fired, 1) == 0
                ? throw Failure
                : ValueTask.FromResult(result);
    }

    /// <summary>Fails the save of a model (as a refused row), and from then on every read.</summary>
    private sealed class SaveThenReadsFail : ISaveChangesInterceptor, IDbCommandInterceptor
    {
        private volatile bool _failed;

        public DbUpdateException SaveFailure { get; } = new("the row was refused");

        public ValueTask<InterceptionResult<int>> SavingChangesAsync(DbContextEventData eventData, InterceptionResult<int> result,
            CancellationToken cancellationToken = default)
        {
            if (eventData.Context?.ChangeTracker.Entries<ModelRecord>().Any(e => e.State == EntityState.Added) != true) return ValueTask.FromResult(result);
            _failed = true;
            throw SaveFailure;
        }

        public ValueTask<InterceptionResult<DbDataReader>> ReaderExecutingAsync(DbCommand command, CommandEventData eventData,
            InterceptionResult<DbDataReader> result, CancellationToken cancellationToken = default) =>
            _failed ? throw new IOException("the database is unreachable") : ValueTask.FromResult(result);
    }

    private static readonly Dictionary<string, byte[]> HeadFiles = new() { ["head.onnx"] = [1, 2, 3] };

    private static ModelCard Card(string version) => new() { Version = version, Labels = ["a", "b"], Backbone = "resnet18", Head = "head.onnx", Input = new ModelInputSpec() };

    private static ModelRegistry Registry(ClassifierDbContext db, IObjectStore store, ModelOptions? options = null) =>
        new(db, store, UnreachablePublishEndpoint.Failing(), options ?? new ModelOptions(), TimeProvider.System, NullLogger<ModelRegistry>.Instance);

    private static async Task AddCandidateAsync(Func<ClassifierDbContext> newContext, Guid jobId, string version, DateTime? promotedAt)
    {
        await using var db = newContext();
        await db.TrainingJobs.Where(j => j.Id == jobId).ExecuteUpdateAsync(s => s.SetProperty(j => j.Stage, TrainingStages.Registering)
            .SetProperty(j => j.DecisionJson, Judged.DecisionJson).SetProperty(j => j.BaselineVersion, Judged.BaselineVersion));
        db.Models.Add(new ModelRecord
        {
            Version = version,
            Origin = "trained",
            TrainingJobId = jobId,
            CardJson = "{}",
            ArtifactPrefix = $"models/{version}/",
            CreatedAt = Now.AddMinutes(-20),
            PromotedAt = promotedAt,
            Status = promotedAt is null ? ModelStatus.Candidate : ModelStatus.Active,
        });
        await db.SaveChangesAsync();
    }

    private static async Task EnterRegisteringAsync(Func<ClassifierDbContext> newContext)
    {
        // Its last attempt's trainer froze (its heartbeat went stale) and the sweeper failed the job, which keeps that
        // trainer's name; then the trainer woke up and reached the registering step before its heartbeat noticed.
        var failed = await AddAsync(newContext, TrainingJobStatus.Running, StaleBefore.AddMinutes(-5), attempts: MaxAttempts, "trainer-a");
        await using (var db = newContext()) Assert.Equal(1, await TrainingJobRunner.FailExhaustedAsync(db, failed, StaleBefore, MaxAttempts, Now));
        var live = await AddAsync(newContext, TrainingJobStatus.Running, Now, attempts: 1, "trainer-a");

        await using (var db = newContext()) Assert.False(await TrainingJobRunner.EnterRegisteringAsync(db, failed, "trainer-a", Judged));
        await using (var db = newContext()) Assert.False(await TrainingJobRunner.EnterRegisteringAsync(db, live, "trainer-b", Judged));
        await using (var db = newContext()) Assert.True(await TrainingJobRunner.EnterRegisteringAsync(db, live, "trainer-a", Judged));

        await using (var db = newContext())
        {
            var row = await db.TrainingJobs.AsNoTracking().SingleAsync(j => j.Id == failed);
            Assert.Equal((TrainingJobStatus.Failed, (string?)null, (string?)null), (row.Status, row.Stage, row.DecisionJson));
            // The judgement is recorded with the step, so whoever finishes the job from its candidate finds the decision.
            var entered = await db.TrainingJobs.AsNoTracking().SingleAsync(j => j.Id == live);
            Assert.Equal((TrainingStages.Registering, Judged.BaselineVersion, Judged.DecisionJson), (entered.Stage, entered.BaselineVersion, entered.DecisionJson));
        }
    }

    private static readonly TrainingJobRunner.Judgement Judged =
        new("active-model", """{"accuracy":0.9}""", """{"accuracy":0.8}""", """{"promoted":true,"refused":false,"reasons":["passed the promotion gate"]}""", """{"hold_out":3}""");

    private static async Task GiveBackAsync(Func<ClassifierDbContext> newContext)
    {
        // Taken over once already (attempt 2), then its trainer is stopped (SIGTERM): a rolling restart is not the job's doing.
        var id = await AddAsync(newContext, TrainingJobStatus.Running, Now, attempts: 2, "trainer-a");
        await using (var db = newContext()) await db.TrainingJobs.Where(j => j.Id == id).ExecuteUpdateAsync(s => s.SetProperty(j => j.Percent, 2.5));

        await using (var db = newContext()) Assert.Equal(0, await TrainingJobRunner.GiveBackAsync(db, id, "trainer-b"));
        await using (var db = newContext()) Assert.Equal(1, await TrainingJobRunner.GiveBackAsync(db, id, "trainer-a"));

        Assert.Equal((TrainingJobStatus.Queued, 1, "trainer-a"), await ReadAsync(newContext, id));
        // Waiting queued, it shows no stage, progress or start of the run it was taken from.
        await using (var db = newContext())
        {
            var row = await db.TrainingJobs.AsNoTracking().SingleAsync(j => j.Id == id);
            Assert.Equal(((string?)null, 0.0, (DateTime?)null, (DateTime?)null), (row.Stage, row.Percent, row.HeartbeatAt, row.StartedAt));
        }
        var later = Now.AddMinutes(1);
        await using (var db = newContext()) Assert.Equal(1, await TrainingJobRunner.TryClaimAsync(db, id, "trainer-b", later, StaleBefore, MaxAttempts, CancellationToken.None));
        Assert.Equal((TrainingJobStatus.Running, 2, "trainer-b"), await ReadAsync(newContext, id));
        await using (var db = newContext()) Assert.Equal(later, await db.TrainingJobs.Where(j => j.Id == id).Select(j => j.StartedAt).SingleAsync());

        // One given back while registering keeps that mark and its progress (the next claim resumes its candidate), not its
        // start: waiting queued, it has not started, and the claim sets started_at anew.
        var registering = await AddAsync(newContext, TrainingJobStatus.Running, Now, attempts: 1, "trainer-c");
        await using (var db = newContext())
            await db.TrainingJobs.Where(j => j.Id == registering).ExecuteUpdateAsync(s => s.SetProperty(j => j.Stage, TrainingStages.Registering).SetProperty(j => j.Percent, 40));
        await using (var db = newContext()) Assert.Equal(1, await TrainingJobRunner.GiveBackAsync(db, registering, "trainer-c"));
        await using (var db = newContext())
        {
            var row = await db.TrainingJobs.AsNoTracking().SingleAsync(j => j.Id == registering);
            Assert.Equal((TrainingJobStatus.Queued, TrainingStages.Registering, 40.0, (DateTime?)null, 0), (row.Status, row.Stage, row.Percent, row.StartedAt, row.Attempts));
        }
    }

    private static async Task EachClaimCountsAsync(Func<ClassifierDbContext> newContext)
    {
        var id = await AddAsync(newContext, TrainingJobStatus.Queued, heartbeatAt: null, attempts: 0, trainerId: null);

        await using (var db = newContext()) Assert.Equal(1, await TrainingJobRunner.TryClaimAsync(db, id, "trainer-a", Now, StaleBefore, MaxAttempts, CancellationToken.None));
        Assert.Equal((TrainingJobStatus.Running, 1, "trainer-a"), await ReadAsync(newContext, id));

        // A live trainer keeps it; once its heartbeat is stale, another takes it over: one more attempt.
        await using (var db = newContext())
            Assert.Equal(0, await TrainingJobRunner.TryClaimAsync(db, id, "trainer-b", Now.AddSeconds(60), StaleBefore.AddSeconds(60), MaxAttempts, CancellationToken.None));
        var later = Now.AddMinutes(10);
        await using (var db = newContext())
            Assert.Equal(1, await TrainingJobRunner.TryClaimAsync(db, id, "trainer-b", later, later.AddSeconds(-120), MaxAttempts, CancellationToken.None));
        Assert.Equal((TrainingJobStatus.Running, 2, "trainer-b"), await ReadAsync(newContext, id));
    }

    private static async Task GivesUpAfterMaxAttemptsAsync(Func<ClassifierDbContext> newContext)
    {
        var exhausted = await AddAsync(newContext, TrainingJobStatus.Running, StaleBefore.AddMinutes(-5), attempts: MaxAttempts, "dead-trainer");
        var belowLimit = await AddAsync(newContext, TrainingJobStatus.Running, StaleBefore.AddMinutes(-5), attempts: MaxAttempts - 1, "dead-trainer");
        var cancelled = await AddAsync(newContext, TrainingJobStatus.Running, StaleBefore.AddMinutes(-5), attempts: MaxAttempts, "dead-trainer", cancelRequested: true);

        // Nothing else runs, yet the job is not taken over a fourth time.
        await using (var db = newContext()) Assert.Equal(0, await TrainingJobRunner.TryClaimAsync(db, exhausted, "trainer-b", Now, StaleBefore, MaxAttempts, CancellationToken.None));
        await using (var db = newContext()) Assert.Equal(1, await TrainingJobRunner.FailExhaustedAsync(db, jobId: null, StaleBefore, MaxAttempts, Now));

        await using (var db = newContext())
        {
            var row = await db.TrainingJobs.AsNoTracking().SingleAsync(j => j.Id == exhausted);
            Assert.Equal((TrainingJobStatus.Failed, MaxAttempts, (string?)null, (DateTime?)Now), (row.Status, row.Attempts, row.Stage, row.FinishedAt));
            Assert.Equal("its trainer stopped 3 times without finishing (Training:MaxAttempts is 3); last trainer dead-trainer; not tried again", row.Error);
        }
        // Below the limit it is taken over as before; a cancel request is left to end it as cancelled.
        Assert.Equal((TrainingJobStatus.Running, MaxAttempts - 1, "dead-trainer"), await ReadAsync(newContext, belowLimit));
        Assert.Equal((TrainingJobStatus.Running, MaxAttempts, "dead-trainer"), await ReadAsync(newContext, cancelled));
        await using (var db = newContext()) Assert.Equal(1, await TrainingJobRunner.TryClaimAsync(db, belowLimit, "trainer-b", Now, StaleBefore, MaxAttempts, CancellationToken.None));
        Assert.Equal((TrainingJobStatus.Running, MaxAttempts, "trainer-b"), await ReadAsync(newContext, belowLimit));

        // A live trainer's job is never failed, however many attempts it took to get there.
        await using (var db = newContext()) Assert.Equal(0, await TrainingJobRunner.FailExhaustedAsync(db, belowLimit, StaleBefore, MaxAttempts, Now));
    }

    private static async Task<Guid> AddAsync(Func<ClassifierDbContext> newContext, string status, DateTime? heartbeatAt, int attempts, string? trainerId,
        bool cancelRequested = false)
    {
        await using var db = newContext();
        var job = new TrainingJob
        {
            Id = Guid.CreateVersion7(),
            Status = status,
            Stage = status == TrainingJobStatus.Running ? TrainingStages.Fitting : null,
            OptionsJson = "{}",
            CreatedAt = Now.AddHours(-1),
            StartedAt = heartbeatAt,
            HeartbeatAt = heartbeatAt,
            TrainerId = trainerId,
            Attempts = attempts,
            CancelRequested = cancelRequested,
        };
        db.TrainingJobs.Add(job);
        await db.SaveChangesAsync();
        return job.Id;
    }

    private static async Task<(string Status, int Attempts, string? TrainerId)> ReadAsync(Func<ClassifierDbContext> newContext, Guid id)
    {
        await using var db = newContext();
        var row = await db.TrainingJobs.AsNoTracking().SingleAsync(j => j.Id == id);
        return (row.Status, row.Attempts, row.TrainerId);
    }

    private static Task WithDatabaseAsync(string provider, Func<Func<ClassifierDbContext>, Task> test) =>
        ProviderDatabases.WithDatabaseAsync(provider, "wc-training-claims", test);
}
