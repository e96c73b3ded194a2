using MassTransit;
using MassTransit.Testing;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using WasteClassifier.Components.Reliability;
using WasteClassifier.Contracts.Messages;
using WasteClassifier.Infrastructure.Persistence;
using WasteClassifier.UnitTests.Support;

namespace WasteClassifier.UnitTests.Components;

/// <summary>A row failed by the fault of one delivery while another delivery of it is still at work.</summary>
public sealed class ClassifyImageFaultAttemptsTests : IDisposable
{
    private readonly InMemoryDatabase _database = new();

    [Fact]
    public async Task Fault_WhileAnotherDeliveryHoldsAClaim_ThatClaimsResultIsSupersededAndTheRowStaysFailed()
    {
        var id = await AddQueuedRowAsync();
        // Another delivery of the same message claims the row and classifies it meanwhile.
        await using var worker = _database.NewContext();
        var claimed = (await worker.ClaimAsync([id], "worker-2", DateTime.UtcNow, maxAttempts: 10, CancellationToken.None)).Claimed.Single();

        await using (var provider = new ServiceCollection()
            .AddScoped(_ => _database.NewContext())
            .AddSingleton(TimeProvider.System)
            .AddPatientTestHarness(bus => bus.AddConsumer<ClassifyImageFaultConsumer>())
            .BuildServiceProvider(true))
        {
            var harness = provider.GetRequiredService<ITestHarness>();
            await harness.Start();
            await harness.Bus.Publish<Fault<ClassifyImage>>(new
            {
                Message = new ClassifyImage { ClassificationId = id, ObjectKey = "objects/a", SubmittedAt = DateTimeOffset.UtcNow },
                Exceptions = new[] { new { ExceptionType = "System.InvalidOperationException", Message = "the batch failed" } },
            });
            Assert.True(await harness.GetConsumerHarness<ClassifyImageFaultConsumer>().Consumed.Any<Fault<ClassifyImage>>());
        }

        (claimed.Status, claimed.PredictedClass, claimed.CompletedAt) = (ClassificationStatus.Completed, "glass", DateTime.UtcNow);
        var superseded = await worker.SaveClaimedResultsAsync(CancellationToken.None);

        Assert.Equal([id], superseded);
        await using var check = _database.NewContext();
        var row = await check.Classifications.AsNoTracking().SingleAsync(c => c.Id == id);
        Assert.Equal((ClassificationStatus.Failed, ClassifyImageFaultConsumer.ProcessingFailed, null), (row.Status, row.ErrorCode, row.PredictedClass));
    }

    private async Task<Guid> AddQueuedRowAsync()
    {
        var now = DateTime.UtcNow;
        var row = new Classification
        {
            Id = Guid.CreateVersion7(),
            Image = new StoredImage { Id = Guid.NewGuid(), ObjectKey = "objects/a", ContentHash = "hash-a", Format = "png", CreatedAt = now },
            Status = ClassificationStatus.Queued,
            CreatedAt = now,
        };
        await using var db = _database.NewContext();
        db.Classifications.Add(row);
        await db.SaveChangesAsync();
        return row.Id;
    }

    public void Dispose() => _database.Dispose();
}
