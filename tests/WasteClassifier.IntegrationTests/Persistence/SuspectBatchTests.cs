using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Logging.Abstractions;
using WasteClassifier.Components.Classifying;
using WasteClassifier.Components.Models;
using WasteClassifier.Contracts.Messages;
using WasteClassifier.Core.Inference;
using WasteClassifier.Infrastructure.Persistence;
using WasteClassifier.Infrastructure.Storage;
using WasteClassifier.IntegrationTests.Fixtures;

namespace WasteClassifier.IntegrationTests.Persistence;

/// <summary>
/// A batch holding a suspect (a row claimed more than twice without a result) on the real PostgreSQL, whose claim is one
/// UPDATE … RETURNING (the unit tests run SQLite's read-then-update): the worker's processor, with the default model and
/// a folder store, saves the other rows first and then classifies the suspect alone.
/// </summary>
public sealed class SuspectBatchTests(DefaultModelFixture model) : IClassFixture<DefaultModelFixture>
{
    private static readonly DateTime CreatedAt = DateTime.UtcNow.AddMinutes(-1);
    private const int MaxAttempts = 3;

    [IntegrationFact]
    public Task Process_OnPostgres_SuspectClassifiedAloneAfterTheRestOfItsBatchIsSaved() =>
        ProviderDatabases.WithDatabaseAsync(DatabaseProviders.Postgres, "wc-suspects", SuspectAloneAfterTheRestAsync);

    private async Task SuspectAloneAfterTheRestAsync(Func<ClassifierDbContext> newContext)
    {
        var folder = Directory.CreateTempSubdirectory("wc-suspects-store-");
        try
        {
            var store = new FileSystemObjectStore(folder.FullName);
            await store.EnsureReadyAsync(CancellationToken.None);
            // Never claimed; claimed twice without a result (the suspect); claimed once (a retry); claimed MaxAttempts times.
            int[] attempts = [0, 2, 1, MaxAttempts];
            var messages = new List<ClassifyImage>();
            await using (var db = newContext())
            {
                var photos = Dataset.Sample(perClass: 1).Take(attempts.Length).Select(s => File.ReadAllBytes(s.Path)).ToList();
                for (var i = 0; i < attempts.Length; i++)
                {
                    var image = TestRows.Image($"{(char)('a' + i)}", CreatedAt);
                    image.SizeBytes = photos[i].Length;
                    await store.PutAsync(image.ObjectKey, photos[i], "image/jpeg", CancellationToken.None);
                    var row = new Classification
                    {
                        Id = Guid.CreateVersion7(),
                        Image = image,
                        Status = attempts[i] > 0 ? ClassificationStatus.Processing : ClassificationStatus.Queued,
                        Attempts = attempts[i],
                        CreatedAt = CreatedAt,
                    };
                    db.Classifications.Add(row);
                    messages.Add(new ClassifyImage { ClassificationId = row.Id, ObjectKey = image.ObjectKey, SubmittedAt = CreatedAt });
                }
                await db.SaveChangesAsync();
            }
            var ids = messages.Select(m => m.ClassificationId).ToList();
            List<Classification> Read(ClassifierDbContext db)
            {
                var rows = db.Classifications.AsNoTracking().Where(c => ids.Contains(c.Id)).ToList();
                return ids.Select(id => rows.Single(r => r.Id == id)).ToList();
            }

            var runs = new List<int>();
            List<Classification>? whileTheSuspectRuns = null;
            var observed = new ObservedClassifier(model.Classifier, count =>
            {
                runs.Add(count);
                if (runs.Count != 2) return;
                // What another worker would find, had the suspect stopped this one in the model.
                using var other = newContext();
                whileTheSuspectRuns = Read(other);
            });
            using var lanes = new ModelLanes(new ModelOptions { InferenceLanes = 1 });
            BatchOutcome outcome;
            await using (var db = newContext())
            {
                var processor = new ClassificationBatchProcessor(db, store, new FixedModelProvider(observed),
                    new WorkerOptions { Id = "worker-1", DecodeParallelism = 2, MaxAttempts = MaxAttempts }, new BatchTensorPool(maxRetained: 1), lanes,
                    new AccessProbeKeys(), TimeProvider.System, NullLogger<ClassificationBatchProcessor>.Instance);
                outcome = await processor.ProcessAsync(messages, CancellationToken.None);
            }

            Assert.Equal(new BatchOutcome(4, 3, 1), outcome);
            Assert.Equal([2, 1], runs);
            Assert.NotNull(whileTheSuspectRuns);
            Assert.Equal([(ClassificationStatus.Completed, 2), (ClassificationStatus.Processing, null), (ClassificationStatus.Completed, 2), (ClassificationStatus.Failed, null)],
                whileTheSuspectRuns.Select(r => (r.Status, r.BatchSize)));
            await using (var db = newContext())
            {
                var rows = Read(db);
                Assert.Equal(
                [
                    (ClassificationStatus.Completed, 1, 2, null),
                    (ClassificationStatus.Completed, 3, 1, null),
                    (ClassificationStatus.Completed, 2, 2, null),
                    (ClassificationStatus.Failed, MaxAttempts + 1, null, ClassificationClaims.TooManyAttempts),
                ], rows.Select(r => (r.Status, r.Attempts, r.BatchSize, r.ErrorCode)));
                Assert.All(rows, r => Assert.Equal("worker-1", r.WorkerId));
                Assert.All(rows, r => Assert.NotNull(r.CompletedAt));
                Assert.All(rows.Where(r => r.Status == ClassificationStatus.Completed), r =>
                {
                    Assert.Equal(model.Classifier.Card.Version, r.ModelVersion);
                    Assert.Contains(r.PredictedClass, model.Classifier.Card.Labels);
                });
            }
        }
        finally
        {
            folder.Delete(recursive: true);
        }
    }

    /// <summary>The model, with a hook that runs before each Run, given its number of images.</summary>
    private sealed class ObservedClassifier(IImageClassifier model, Action<int> beforeRun) : IImageClassifier
    {
        public ModelCard Card => model.Card;

        public float[][] Classify(ReadOnlyMemory<float> batch, int count)
        {
            beforeRun(count);
            return model.Classify(batch, count);
        }

        // The fixture owns the model.
        public void Dispose()
        {
        }
    }

    private sealed class FixedModelProvider(IImageClassifier classifier) : IModelProvider
    {
        public ModelCard? LoadedCard => classifier.Card;

        public Task<ModelLease> AcquireAsync(CancellationToken cancellationToken) => Task.FromResult(new ModelLease(new SharedModel(classifier)));
    }
}

/// <summary>The bundled default model (models/default beside the test binaries), loaded once for a test class.</summary>
public sealed class DefaultModelFixture : IDisposable
{
    public OnnxImageClassifier Classifier { get; } =
        ModelLoader.Load(Path.Combine(AppContext.BaseDirectory, "models", "default"), new InferenceOptions { IntraOpThreads = 1 });

    public void Dispose() => Classifier.Dispose();
}
