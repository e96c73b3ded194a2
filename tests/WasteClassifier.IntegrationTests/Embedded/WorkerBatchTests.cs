using System.Net;
using System.Net.Http.Json;
using System.Net.Sockets;
using MassTransit;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using WasteClassifier.Api.Submissions;
using WasteClassifier.Contracts.Messages;
using WasteClassifier.Infrastructure.Persistence;
using WasteClassifier.Infrastructure.Storage;
using WasteClassifier.IntegrationTests.Fixtures;

namespace WasteClassifier.IntegrationTests.Embedded;

/// <summary>What reaches the worker through the queue, bypassing the API's checks: bad images fail alone, redeliveries do no work.</summary>
[Collection(EmbeddedCollection.Name)]
public sealed class WorkerBatchTests(EmbeddedApiFixture fixture)
{
    [Fact]
    public async Task Batch_WithCorruptAndMissingImages_FailsThoseRowsAndCompletesTheRest()
    {
        var good = Dataset.Sample(perClass: 1).Take(4).Select(s => File.ReadAllBytes(s.Path)).ToList();
        var truncated = good[0][..(good[0].Length / 3)];
        var objects = new List<(string Key, byte[]? Content)>(good.Select(g => ($"test/{Guid.NewGuid():N}", (byte[]?)g)))
        {
            ($"test/{Guid.NewGuid():N}", "not an image at all"u8.ToArray()),
            ($"test/{Guid.NewGuid():N}", HostileImages.PngHeaderOnly(30000, 30000)),
            ($"test/{Guid.NewGuid():N}", null), // never stored: missing object
            ($"test/{Guid.NewGuid():N}", truncated),
        };

        var ids = await QueueDirectlyAsync(objects);
        var results = await fixture.Client.WaitForAllAsync(ids, TimeSpan.FromMinutes(1));

        for (var i = 0; i < 4; i++) Assert.Equal("completed", results[i]["status"]!.GetValue<string>());
        Assert.Equal(["not_an_image", "image_too_large", "image_missing"], results.Skip(4).Take(3).Select(r => r["error_code"]!.GetValue<string>()));
        Assert.All(results.Skip(4).Take(3), r => Assert.Equal("failed", r["status"]!.GetValue<string>()));
        Assert.All(results.Skip(4).Take(3), r => Assert.False(string.IsNullOrWhiteSpace(r["error"]!.GetValue<string>())));
        // A truncated JPEG fails alone, never classified as far as its data goes.
        Assert.Equal(("failed", "truncated_image"), (results[7]["status"]!.GetValue<string>(), results[7]["error_code"]?.GetValue<string>()));
        // Nor does it become a training sample: most of it is not there.
        var label = await fixture.Client.Http.PutAsJsonAsync($"/v1/classifications/{ids[7]}/label", new { label = "glass" });
        Assert.Equal(HttpStatusCode.Conflict, label.StatusCode);
    }

    [Fact]
    public async Task Message_ThatFailsEveryRetry_EndsInTheErrorQueueWithItsRowFailed()
    {
        // A socket where the image should be: every read fails with an IOException, as a failing disk's would. An I/O error
        // may pass, so the batch is retried; this one never does, a fault no retry can cure.
        var key = $"test/socket-{Guid.NewGuid():N}";
        BindSocketAt(key);
        var ids = await QueueDirectlyAsync([(key, null)]);

        var result = (await fixture.Client.WaitForAllAsync(ids, TimeSpan.FromMinutes(2)))[0];

        Assert.Equal("failed", result["status"]!.GetValue<string>());
        Assert.Equal("processing_failed", result["error_code"]!.GetValue<string>());
        Assert.Contains("IOException", result["error"]!.GetValue<string>());
    }

    [Fact]
    public async Task Batch_WithAKeyTheStoreRefuses_FailsThatRowUnreadableWithoutRetriesAndCompletesTheRest()
    {
        // The folder store refuses a key that would leave its folder on every read: no retry changes that.
        var good = File.ReadAllBytes(Dataset.Sample(1)[0].Path);
        await fixture.Client.WaitForModelAsync();
        var ids = await QueueDirectlyAsync([($"test/../escape-{Guid.NewGuid():N}", null), ($"test/{Guid.NewGuid():N}", good)]);

        // Well within the retries' 35 s: the row is failed at once (the bound counts from a worker that has its model).
        var results = await fixture.Client.WaitForAllAsync(ids, TimeSpan.FromSeconds(20));

        Assert.Equal(("failed", "image_unreadable"), (results[0]["status"]!.GetValue<string>(), results[0]["error_code"]!.GetValue<string>()));
        // Named by kind only: a store's own message may carry its host or bucket (ObjectStoreErrors.Describe).
        Assert.Contains("the object key is not valid for the store", results[0]["error"]!.GetValue<string>());
        Assert.Equal("completed", results[1]["status"]!.GetValue<string>());
        // An image nobody can read teaches nothing: labelling it would fail every training job that reads it.
        var label = await fixture.Client.Http.PutAsJsonAsync($"/v1/classifications/{ids[0]}/label", new { label = "cardboard" });
        Assert.Equal(HttpStatusCode.Conflict, label.StatusCode);
        Assert.Equal("image_unusable", (await ClassifierClient.ReadJsonAsync(label))["error"]!.GetValue<string>());
    }

    [Fact]
    public async Task Republisher_RowRecordedButNeverSent_IsSentAndCompleted()
    {
        var image = File.ReadAllBytes(Dataset.Sample(1)[1].Path);
        var ids = await RecordAsync(fixture, [($"test/{Guid.NewGuid():N}", image)], send: false, createdAt: DateTime.UtcNow.AddMinutes(-1));

        var result = (await fixture.Client.WaitForAllAsync(ids, TimeSpan.FromSeconds(30)))[0];

        Assert.Equal("completed", result["status"]!.GetValue<string>());
    }

    [Fact]
    public async Task Redelivery_OfACompletedClassification_DoesNoWork()
    {
        var ids = await QueueDirectlyAsync([($"test/{Guid.NewGuid():N}", File.ReadAllBytes(Dataset.Sample(1)[0].Path))]);
        var first = (await fixture.Client.WaitForAllAsync(ids, TimeSpan.FromMinutes(1)))[0];

        // Checked once the worker's consumer has returned from the redelivery: a fixed wait passed, on a loaded machine, before
        // the message was taken at all.
        var consumed = new ClassifyImageConsumed();
        using (fixture.Factory.Services.GetRequiredService<IBus>().ConnectConsumeMessageObserver(consumed))
        {
            await SendAsync(ids[0], first["id"]!.GetValue<string>());
            await consumed.For(ids[0]).WaitAsync(TimeSpan.FromSeconds(60));
        }

        var again = await fixture.Client.GetAsync(ids[0]);
        Assert.Equal(first["completed_at"]!.ToString(), again["completed_at"]!.ToString());
        using var scope = fixture.Factory.Services.CreateScope();
        var row = await scope.ServiceProvider.GetRequiredService<ClassifierDbContext>().Classifications.SingleAsync(c => c.Id == ids[0]);
        Assert.Equal(1, row.Attempts);
    }

    /// <summary>Puts a Unix socket where the folder store keeps <paramref name="key"/>.</summary>
    private void BindSocketAt(string key)
    {
        var options = fixture.Factory.Services.GetRequiredService<ObjectStoreOptions>();
        var path = Path.Combine(options.Root ?? Path.Combine(fixture.DataDirectory, "objects"), options.Bucket, key);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        // Bound on a short path (a socket's is limited to 108 bytes), then moved into place before the socket is closed:
        // closing it deletes the file it bound.
        var bound = Path.Combine(Path.GetTempPath(), $"wc-{Guid.NewGuid():N}"[..15]);
        using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        socket.Bind(new UnixDomainSocketEndPoint(bound));
        File.Move(bound, path);
    }

    private Task<List<Guid>> QueueDirectlyAsync(IReadOnlyList<(string Key, byte[]? Content)> objects) => RecordAsync(fixture, objects, send: true);

    /// <summary>Stores objects and records queued rows for them as the API would, sending ClassifyImage only if asked.</summary>
    internal static async Task<List<Guid>> RecordAsync(EmbeddedApiFixture fixture, IReadOnlyList<(string Key, byte[]? Content)> objects, bool send, DateTime? createdAt = null)
    {
        using var scope = fixture.Factory.Services.CreateScope();
        var db = scope.ServiceProvider.GetRequiredService<ClassifierDbContext>();
        var store = scope.ServiceProvider.GetRequiredService<IObjectStore>();
        var rows = new List<Classification>();
        foreach (var (key, content) in objects)
        {
            if (content is not null) await store.PutAsync(key, content, "image/jpeg", CancellationToken.None);
            var image = new StoredImage { Id = Guid.NewGuid(), ObjectKey = key, ContentHash = key[5..], Format = "unknown", CreatedAt = DateTime.UtcNow };
            var row = new Classification
            {
                Id = Guid.CreateVersion7(),
                ImageId = image.Id,
                Image = image,
                Status = ClassificationStatus.Queued,
                CreatedAt = createdAt ?? DateTime.UtcNow,
                PublishedAt = send ? DateTime.UtcNow : null,
            };
            db.Classifications.Add(row);
            rows.Add(row);
        }
        await db.SaveChangesAsync();
        if (!send) return rows.Select(r => r.Id).ToList();
        var endpoint = await scope.ServiceProvider.GetRequiredService<ISendEndpointProvider>().GetSendEndpoint(QueueNames.Address(QueueNames.ClassifyImage));
        await endpoint.SendBatch(rows.Select(r => new ClassifyImage { ClassificationId = r.Id, ObjectKey = r.Image!.ObjectKey, SubmittedAt = DateTimeOffset.UtcNow }));
        return rows.Select(r => r.Id).ToList();
    }

    private async Task SendAsync(Guid id, string _)
    {
        using var scope = fixture.Factory.Services.CreateScope();
        var db = scope.ServiceProvider.GetRequiredService<ClassifierDbContext>();
        var row = await db.Classifications.Include(c => c.Image).SingleAsync(c => c.Id == id);
        var endpoint = await scope.ServiceProvider.GetRequiredService<ISendEndpointProvider>().GetSendEndpoint(QueueNames.Address(QueueNames.ClassifyImage));
        await endpoint.Send(new ClassifyImage { ClassificationId = id, ObjectKey = row.Image!.ObjectKey, SubmittedAt = DateTimeOffset.UtcNow });
    }
}
