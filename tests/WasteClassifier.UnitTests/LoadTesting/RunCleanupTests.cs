using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using WasteClassifier.Api.Submissions;
using WasteClassifier.Infrastructure.Persistence;
using WasteClassifier.Infrastructure.Storage;
using WasteClassifier.LoadTesting.Targets;
using WasteClassifier.UnitTests.Support;

namespace WasteClassifier.UnitTests.LoadTesting;

/// <summary>Removing a load test's rows and objects while the object store fails some deletes.</summary>
public sealed class RunCleanupTests : IDisposable
{
    private const string Source = "loadtest-cleanup-test";

    private readonly InMemoryDatabase _database = new();
    private readonly FailingDeletes _store = new();

    [Fact]
    public async Task RemoveEarlierRun_StoreFailsADelete_ItsImageAndRowsAreKeptAndASecondCleanupFinishes()
    {
        var images = new List<string>();
        for (var i = 0; i < 3; i++) images.Add(await AddClassifiedImageAsync());
        _store.Failing.Add(images[1]);
        var services = Services();

        var first = await RunCleanup.RemoveEarlierRunAsync(services, Source, CancellationToken.None);

        // The image whose object is still there keeps its row and classification: that is how --source finds it again.
        Assert.Equal(new RunCleanup.Removed(2, 2, 1), first! with { Failure = null });
        Assert.Contains(images[1], first.Failure);
        Assert.Equal([images[1]], _store.Objects.Keys);
        await using (var check = _database.NewContext())
        {
            Assert.Equal(1, await check.Classifications.CountAsync(c => c.Source == Source));
            Assert.Equal([images[1]], await check.Images.Select(i => i.ObjectKey).ToListAsync());
        }

        _store.Failing.Clear();
        var second = await RunCleanup.RemoveEarlierRunAsync(services, Source, CancellationToken.None);

        Assert.Equal(new RunCleanup.Removed(1, 1), second);
        Assert.Empty(_store.Objects);
        await using (var check = _database.NewContext())
            Assert.Empty(await check.Images.ToListAsync());
    }

    [Fact]
    public async Task Remove_ObjectAlreadyGone_ItsRowsAreRemoved()
    {
        var key = await AddClassifiedImageAsync();
        _store.Objects.Remove(key);
        _store.MissingAnswersNotFound = true;

        var removed = await RunCleanup.RemoveAsync(Services(), Source, DateTime.UtcNow.AddMinutes(-5), CancellationToken.None);

        Assert.Equal(new RunCleanup.Removed(1, 1), removed);
    }

    [Fact]
    public async Task Remove_StoreAway_StopsTryingAfterAFewFailuresAndKeepsEverything()
    {
        for (var i = 0; i < 6; i++) _store.Failing.Add(await AddClassifiedImageAsync());

        var removed = await RunCleanup.RemoveAsync(Services(), Source, DateTime.UtcNow.AddMinutes(-5), CancellationToken.None);

        Assert.Equal((0, 0, 6), (removed.Classifications, removed.Images, removed.ImagesLeft));
        Assert.Equal(RunCleanup.MaxFailedDeletesInARow, _store.Attempts);
    }

    [Fact]
    public async Task Remove_ImageOfTheRunLabelledByAnOperator_ClassificationRemovedImageObjectAndSampleKept()
    {
        // PUT /v1/classifications/{id}/label on one of the run's results: deleting the image row cascaded to the sample.
        var key = await AddClassifiedImageAsync();
        await AddSampleAsync(key, SampleOrigin.Feedback);

        var removed = await RunCleanup.RemoveAsync(Services(), Source, DateTime.UtcNow.AddMinutes(-5), CancellationToken.None);

        Assert.Equal(new RunCleanup.Removed(1, 0, ImagesKeptForSamples: 1), removed);
        await AssertKeptWithItsSampleAsync(key);
    }

    [Fact]
    public async Task Remove_StoredImageATrainingUploadReused_ImageObjectAndSampleKept()
    {
        // Queue mode stored the image without classifying it, and a training upload of the same content reused its row.
        var key = await AddClassifiedImageAsync();
        Guid imageId;
        await using (var db = _database.NewContext())
        {
            imageId = (await db.Images.SingleAsync(i => i.ObjectKey == key)).Id;
            await db.Classifications.ExecuteDeleteAsync();
        }
        await AddSampleAsync(key, SampleOrigin.Upload);

        var removed = await RunCleanup.RemoveAsync(Services(), Source, DateTime.UtcNow.AddMinutes(-5), CancellationToken.None, [imageId]);

        Assert.Equal(new RunCleanup.Removed(0, 0, ImagesKeptForSamples: 1), removed);
        await AssertKeptWithItsSampleAsync(key);
    }

    [Fact]
    public async Task RemoveEarlierRun_ImagesQueueModeStoredAndNeverClassified_FoundByTheirNameAndRemoved()
    {
        // A queue-mode run stopped before any classification row: nothing carries its source but its images' names. Another
        // run's image, and an image named alike by something else (no space after the source), stay.
        var ours = await AddStoredImageAsync(RunCleanup.StoredFileName(Source, "a.jpg"));
        var another = await AddStoredImageAsync(RunCleanup.StoredFileName(Source + "0", "a.jpg"));
        var alike = await AddStoredImageAsync($"{Source}.jpg");

        var removed = await RunCleanup.RemoveEarlierRunAsync(Services(), Source, CancellationToken.None);

        Assert.Equal(new RunCleanup.Removed(0, 1), removed);
        Assert.Equal(new[] { another, alike }.Order(), _store.Objects.Keys.Order());
        await using var check = _database.NewContext();
        Assert.Equal(new[] { another, alike }.Order(), (await check.Images.Select(i => i.ObjectKey).ToListAsync()).Order());
        Assert.DoesNotContain(ours, _store.Objects.Keys);
    }

    [Theory]
    [InlineData("dir\\a.jpg")]
    [InlineData("dir/a.jpg")]
    public async Task RemoveEarlierRun_QueueModeImageNamedWithAPath_FoundByTheNameTheIntakeRecords(string fileName)
    {
        // The intake makes every name safe, dropping a path's folders: made safe after the source was added, the name lost it.
        var ours = await AddStoredImageAsync(FileNames.Sanitize(RunCleanup.StoredFileName(Source, fileName))!);

        var removed = await RunCleanup.RemoveEarlierRunAsync(Services(), Source, CancellationToken.None);

        Assert.Equal(new RunCleanup.Removed(0, 1), removed);
        Assert.DoesNotContain(ours, _store.Objects.Keys);
    }

    [Fact]
    public async Task RemoveEarlierRun_FortyThousandImages_AllRemoved()
    {
        // One SQL parameter per id: SQLite refused the statements ("too many SQL variables"), so a large run could never be removed.
        const int count = 40_000;
        var template = await AddClassifiedImageAsync();
        await using (var db = _database.NewContext())
        {
            // Copies of the first image and its classification, made in SQL: 80,000 rows through EF take far longer.
            await db.Database.ExecuteSqlRawAsync("""
                WITH RECURSIVE n(k) AS (SELECT 1 UNION ALL SELECT k + 1 FROM n WHERE k < {0})
                INSERT INTO images (id, object_key, content_hash, size_bytes, format, width, height, created_at)
                SELECT printf('%08X-0000-4000-8000-%012X', k, k), 'images/bulk-' || k, printf('%064X', k), i.size_bytes, i.format, i.width, i.height, i.created_at
                FROM n, images i WHERE i.object_key = {1}
                """, count - 1, template);
            await db.Database.ExecuteSqlRawAsync("""
                INSERT INTO classifications (id, image_id, source, status, idempotency_index, idempotency_scope, attempts, created_at)
                SELECT printf('%08X-0000-7000-8000-%012X', i.rowid, i.rowid), i.id, c.source, c.status, 0, '', 0, c.created_at
                FROM images i, classifications c WHERE i.object_key LIKE 'images/bulk-%'
                """);
            Assert.Equal(count, await db.Classifications.CountAsync(c => c.Source == Source));
        }
        for (var k = 1; k < count; k++) _store.Objects[$"images/bulk-{k}"] = [1];

        var removed = await RunCleanup.RemoveEarlierRunAsync(Services(), Source, CancellationToken.None);

        Assert.Equal(new RunCleanup.Removed(count, count), removed);
        Assert.Empty(_store.Objects);
        await using var check = _database.NewContext();
        Assert.Equal((0, 0), (await check.Classifications.CountAsync(), await check.Images.CountAsync()));
    }

    [Fact]
    public async Task Remove_FolderStoreRootMissing_NothingCountsAsDeletedAndTheRowsStay()
    {
        // A wrong DataDirectory, say: each delete threw DirectoryNotFoundException, taken for an object already gone, so
        // every row was deleted and the objects, wherever the store really is, were left with nothing to find them by.
        for (var i = 0; i < 2; i++) await AddClassifiedImageAsync();
        var services = new ServiceCollection()
            .AddScoped(_ => _database.NewContext())
            .AddSingleton<IObjectStore>(new FileSystemObjectStore(Path.Combine(Path.GetTempPath(), $"no-store-{Guid.NewGuid():N}")))
            .BuildServiceProvider();

        var removed = await RunCleanup.RemoveAsync(services, Source, DateTime.UtcNow.AddMinutes(-5), CancellationToken.None);

        Assert.Equal((0, 0, 2), (removed.Classifications, removed.Images, removed.ImagesLeft));
        Assert.Contains("is missing", removed.Failure);
        await using var check = _database.NewContext();
        Assert.Equal((2, 2), (await check.Classifications.CountAsync(), await check.Images.CountAsync()));
    }

    private async Task AddSampleAsync(string objectKey, string origin)
    {
        await using var db = _database.NewContext();
        var image = await db.Images.SingleAsync(i => i.ObjectKey == objectKey);
        db.LabelledSamples.Add(new LabelledSample { Id = Guid.NewGuid(), ImageId = image.Id, Label = "glass", Origin = origin, CreatedAt = DateTime.UtcNow });
        await db.SaveChangesAsync();
    }

    private async Task AssertKeptWithItsSampleAsync(string objectKey)
    {
        Assert.True(_store.Objects.ContainsKey(objectKey));
        await using var check = _database.NewContext();
        Assert.Equal(0, await check.Classifications.CountAsync());
        Assert.Equal([objectKey], await check.Images.Select(i => i.ObjectKey).ToListAsync());
        Assert.Equal(1, await check.LabelledSamples.CountAsync());
    }

    private IServiceProvider Services() => new ServiceCollection()
        .AddScoped(_ => _database.NewContext())
        .AddSingleton<IObjectStore>(_store)
        .BuildServiceProvider();

    /// <summary>An image the run created, its object in the store, and one classification of it under the run's source.</summary>
    private async Task<string> AddClassifiedImageAsync()
    {
        var image = new StoredImage
        {
            Id = Guid.NewGuid(),
            ObjectKey = $"images/{Guid.NewGuid():N}",
            ContentHash = Guid.NewGuid().ToString("N"),
            Format = "jpeg",
            CreatedAt = DateTime.UtcNow,
        };
        await using var db = _database.NewContext();
        db.Images.Add(image);
        db.Classifications.Add(new Classification { Id = Guid.CreateVersion7(), ImageId = image.Id, Source = Source, CreatedAt = DateTime.UtcNow.AddSeconds(1) });
        await db.SaveChangesAsync();
        _store.Objects[image.ObjectKey] = [1, 2, 3];
        return image.ObjectKey;
    }

    /// <summary>An image stored under <paramref name="fileName"/>, its object in the store, and no classification.</summary>
    private async Task<string> AddStoredImageAsync(string fileName)
    {
        var image = new StoredImage
        {
            Id = Guid.NewGuid(),
            ObjectKey = $"images/{Guid.NewGuid():N}",
            ContentHash = Guid.NewGuid().ToString("N"),
            Format = "jpeg",
            FileName = fileName,
            CreatedAt = DateTime.UtcNow,
        };
        await using var db = _database.NewContext();
        db.Images.Add(image);
        await db.SaveChangesAsync();
        _store.Objects[image.ObjectKey] = [1, 2, 3];
        return image.ObjectKey;
    }

    public void Dispose() => _database.Dispose();

    /// <summary>Objects in memory whose deletes of the keys in <see cref="Failing"/> throw.</summary>
    private sealed class FailingDeletes : IObjectStore
    {
        public Dictionary<string, byte[]> Objects { get; } = [];

        public HashSet<string> Failing { get; } = [];

        /// <summary>A delete of an object that is not there throws as S3's not-found does, rather than succeed.</summary>
        public bool MissingAnswersNotFound { get; set; }

        public int Attempts { get; private set; }

        public Task DeleteAsync(string key, CancellationToken cancellationToken)
        {
            Attempts++;
            if (Failing.Contains(key)) throw new HttpRequestException("connection refused");
            if (!Objects.Remove(key) && MissingAnswersNotFound) throw new HttpRequestException("no such key", null, System.Net.HttpStatusCode.NotFound);
            return Task.CompletedTask;
        }

        public Task EnsureReadyAsync(CancellationToken cancellationToken) => Task.CompletedTask;

        public Task PutAsync(string key, ReadOnlyMemory<byte> content, string contentType, CancellationToken cancellationToken)
        {
            Objects[key] = content.ToArray();
            return Task.CompletedTask;
        }

        public Task<byte[]?> GetAsync(string key, CancellationToken cancellationToken) => Task.FromResult(Objects.GetValueOrDefault(key));

        public Task<byte[]?> GetAsync(string key, long maxBytes, CancellationToken cancellationToken) => GetAsync(key, cancellationToken);

        public Task CheckAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }
}
