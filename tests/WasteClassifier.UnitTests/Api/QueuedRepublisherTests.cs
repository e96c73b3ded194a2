using System.Data.Common;
using MassTransit;
using MassTransit.Testing;
using Microsoft.EntityFrameworkCore.Diagnostics;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using WasteClassifier.Api.Submissions;
using WasteClassifier.Components.Classifying;
using WasteClassifier.Components.Models;
using WasteClassifier.Contracts.Messages;
using WasteClassifier.Core.Inference;
using WasteClassifier.Infrastructure.Messaging;
using WasteClassifier.Infrastructure.Persistence;
using WasteClassifier.UnitTests.Support;

namespace WasteClassifier.UnitTests.Api;

/// <summary>Which unfinished rows the re-publisher sends again, and how often.</summary>
public sealed class QueuedRepublisherTests : IAsyncDisposable
{
    private readonly InMemoryDatabase _database = new();
    private readonly MovableClock _clock = new();
    private ServiceProvider? _services;
    private IInterceptor? _republisherDbInterceptor;

    [Fact]
    public async Task Republish_ProcessingRowStuck_SentOnceThenNotAgainUntilItIsStuckAgain()
    {
        var now = _clock.GetUtcNow().UtcDateTime;
        var row = await AddAsync(ClassificationStatus.Processing, createdAt: now.AddMinutes(-21), publishedAt: now.AddMinutes(-21), startedAt: now.AddMinutes(-20));
        var (republisher, harness) = await RepublisherAsync(MessagingTransports.RabbitMq);

        Assert.Equal(1, await republisher.RepublishAsync(CancellationToken.None));

        // No worker has claimed it since: its StartedAt is still 20 minutes old, but it was just sent.
        _clock.Advance(TimeSpan.FromSeconds(5));
        Assert.Equal(0, await republisher.RepublishAsync(CancellationToken.None));

        // Past StuckAfterSeconds since that send, it is sent again.
        _clock.Advance(TimeSpan.FromMinutes(10));
        Assert.Equal(1, await republisher.RepublishAsync(CancellationToken.None));
        Assert.Equal(2, harness.Sent.Select<ClassifyImage>().Count(m => m.Context.Message.ClassificationId == row));
    }

    [Theory]
    [InlineData(MessagingTransports.RabbitMq)]
    [InlineData(MessagingTransports.InMemory)] // the first round after a start resends every unfinished row
    public async Task Republish_DuplicateFrameWaitingOnItsOriginal_NotSent(string transport)
    {
        // Both recorded 11 minutes ago: the original was sent and is still queued (its message lost), the duplicate
        // was never sent (stamped as sent when it was marked), and waits for the original's result.
        var createdAt = _clock.GetUtcNow().UtcDateTime.AddMinutes(-11);
        var original = await AddAsync(ClassificationStatus.Queued, createdAt, publishedAt: createdAt);
        await AddAsync(ClassificationStatus.Queued, createdAt, publishedAt: createdAt, duplicateOf: original);
        var (republisher, harness) = await RepublisherAsync(transport);

        Assert.Equal(1, await republisher.RepublishAsync(CancellationToken.None));
        Assert.Equal([original], harness.Sent.Select<ClassifyImage>().Select(m => m.Context.Message.ClassificationId));
    }

    [Fact]
    public async Task Republish_InMemoryRecoveryOfMoreThanOneRound_EachRowSentOnce()
    {
        // 501 rows a previous run left queued: the first round sends 500, the next the last one, not the first 500 again.
        var createdAt = _clock.GetUtcNow().UtcDateTime.AddMinutes(-1);
        var rows = Enumerable.Range(0, 501).Select(i => NewRow(ClassificationStatus.Queued, createdAt.AddMilliseconds(i), publishedAt: createdAt.AddMilliseconds(i))).ToList();
        await using (var db = _database.NewContext())
        {
            db.Classifications.AddRange(rows);
            await db.SaveChangesAsync();
        }
        var (republisher, harness) = await RepublisherAsync(MessagingTransports.InMemory);

        Assert.Equal(500, await republisher.RepublishAsync(CancellationToken.None));
        _clock.Advance(TimeSpan.FromSeconds(5));
        Assert.Equal(1, await republisher.RepublishAsync(CancellationToken.None));
        _clock.Advance(TimeSpan.FromSeconds(5));
        Assert.Equal(0, await republisher.RepublishAsync(CancellationToken.None));
        Assert.Equal(rows.Select(r => r.Id).Order(), harness.Sent.Select<ClassifyImage>().Select(m => m.Context.Message.ClassificationId).Order());
    }

    [Fact]
    public async Task Republish_QueuedRowAWorkerSentBackLately_NotSentAgainWhenItsFirstSendIsStuck()
    {
        // Sent 9 minutes ago; a worker without a model sends its message back now. Unstamped by that, the row was sent again
        // a minute later with a send-back count of 0: under a backlog the send-back limit was never reached.
        var now = _clock.GetUtcNow().UtcDateTime;
        var row = await AddAsync(ClassificationStatus.Queued, createdAt: now.AddMinutes(-9), publishedAt: now.AddMinutes(-9));
        var (republisher, harness) = await RepublisherAsync(MessagingTransports.RabbitMq);
        await using (var db = _database.NewContext())
        {
            var noModel = new ClassificationBatchProcessor(db, new MemoryObjectStore(), new NoModelProvider(), new WorkerOptions { Id = "worker-1" },
                new BatchTensorPool(maxRetained: 1), new ModelLanes(new ModelOptions { InferenceLanes = 1 }), new AccessProbeKeys(), _clock,
                NullLogger<ClassificationBatchProcessor>.Instance);
            await Assert.ThrowsAsync<WorkerFaultException>(() =>
                noModel.ProcessAsync([new ClassifyImage { ClassificationId = row, ObjectKey = "k", SubmittedAt = DateTimeOffset.UtcNow }], CancellationToken.None));
        }

        _clock.Advance(TimeSpan.FromMinutes(2));
        Assert.Equal(0, await republisher.RepublishAsync(CancellationToken.None));

        // Lost after that send-back: sent again StuckAfterSeconds after it.
        _clock.Advance(TimeSpan.FromMinutes(9));
        Assert.Equal(1, await republisher.RepublishAsync(CancellationToken.None));
        Assert.Equal([row], harness.Sent.Select<ClassifyImage>().Select(m => m.Context.Message.ClassificationId));
    }

    [Fact]
    public async Task Republish_AnotherReplicaSendsTheRowsBetweenItsReadAndItsSend_EachRowSentOnce()
    {
        // Two API replicas over the same stuck rows: the second's whole round runs after the first has read them. The
        // first sent them as well, unclaimed.
        var now = _clock.GetUtcNow().UtcDateTime;
        var rows = new[]
        {
            await AddAsync(ClassificationStatus.Queued, createdAt: now.AddMinutes(-21), publishedAt: now.AddMinutes(-21)),
            await AddAsync(ClassificationStatus.Processing, createdAt: now.AddMinutes(-21), publishedAt: now.AddMinutes(-21), startedAt: now.AddMinutes(-20)),
            await AddAsync(ClassificationStatus.Queued, createdAt: now.AddMinutes(-1), publishedAt: null),
        };
        var (first, harness) = await RepublisherAsync(MessagingTransports.RabbitMq);
        var second = new QueuedRepublisher(_services!.GetRequiredService<IServiceScopeFactory>(), new ConfigurationBuilder().Build(), _clock,
            NullLogger<QueuedRepublisher>.Instance);
        var sentBySecond = -1;
        _republisherDbInterceptor = new AfterFirstRead(async () => sentBySecond = await second.RepublishAsync(CancellationToken.None));

        Assert.Equal(0, await first.RepublishAsync(CancellationToken.None));

        Assert.Equal(3, sentBySecond);
        Assert.Equal(rows.Order(), harness.Sent.Select<ClassifyImage>().Select(m => m.Context.Message.ClassificationId).Order());
    }

    private async Task<(QueuedRepublisher, ITestHarness)> RepublisherAsync(string transport)
    {
        _services = new ServiceCollection()
            .AddPatientTestHarness()
            .AddScoped(_ => _republisherDbInterceptor is { } interceptor ? _database.NewContext(interceptor) : _database.NewContext())
            .AddSingleton(new MessagingOptions { Transport = transport })
            .AddSingleton<TimeProvider>(_clock)
            .AddScoped<ClassifyCommandSender>()
            .BuildServiceProvider();
        var harness = _services.GetRequiredService<ITestHarness>();
        await harness.Start();
        var republisher = new QueuedRepublisher(_services.GetRequiredService<IServiceScopeFactory>(), new ConfigurationBuilder().Build(), _clock,
            NullLogger<QueuedRepublisher>.Instance);
        return (republisher, harness);
    }

    private async Task<Guid> AddAsync(string status, DateTime createdAt, DateTime? publishedAt, DateTime? startedAt = null, Guid? duplicateOf = null)
    {
        var row = NewRow(status, createdAt, publishedAt, startedAt, duplicateOf);
        await using var db = _database.NewContext();
        db.Classifications.Add(row);
        await db.SaveChangesAsync();
        return row.Id;
    }

    private static Classification NewRow(string status, DateTime createdAt, DateTime? publishedAt, DateTime? startedAt = null, Guid? duplicateOf = null) =>
        new()
        {
            Id = Guid.CreateVersion7(),
            Image = new StoredImage { Id = Guid.NewGuid(), ObjectKey = $"objects/{Guid.NewGuid():N}", ContentHash = Guid.NewGuid().ToString("N"), Format = "png", CreatedAt = createdAt },
            Status = status,
            CreatedAt = createdAt,
            PublishedAt = publishedAt,
            StartedAt = startedAt,
            Attempts = startedAt is null ? 0 : 1,
            DuplicateOfId = duplicateOf,
        };

    public async ValueTask DisposeAsync()
    {
        if (_services is not null) await _services.DisposeAsync();
        _database.Dispose();
    }

    /// <summary>A worker that cannot load the registry's active model.</summary>
    private sealed class NoModelProvider : IModelProvider
    {
        public ModelCard? LoadedCard => null;

        public Task<ModelLease> AcquireAsync(CancellationToken cancellationToken) => throw new FileNotFoundException("model.onnx is missing");
    }

    /// <summary>Runs <paramref name="meanwhile"/> once, when the first query's rows have been read.</summary>
    private sealed class AfterFirstRead(Func<Task> meanwhile) : DbCommandInterceptor
    {
        private int _done;

        public override async ValueTask<InterceptionResult> DataReaderClosingAsync(DbCommand command, DataReaderClosingEventData eventData, InterceptionResult result)
        {
            if (Interlocked.Exchange(ref _done, 1) == 0) await meanwhile();
            return result;
        }
    }

    private sealed class MovableClock : TimeProvider
    {
        private TimeSpan _by;

        public void Advance(TimeSpan by) => _by += by;

        public override DateTimeOffset GetUtcNow() => System.GetUtcNow() + _by;
    }
}
