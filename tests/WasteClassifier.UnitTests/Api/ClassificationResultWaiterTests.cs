using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using WasteClassifier.Api.Submissions;

namespace WasteClassifier.UnitTests.Api;

/// <summary>Announced results answer waiting requests; the database check (not started here) is covered end to end.</summary>
public sealed class ClassificationResultWaiterTests
{
    private readonly ClassificationResultWaiter _waiter = new(new ServiceCollection().BuildServiceProvider().GetRequiredService<IServiceScopeFactory>(),
        NullLogger<ClassificationResultWaiter>.Instance);

    [Fact]
    public async Task Finished_AnnouncedId_EveryRequestWaitingForItAnswers()
    {
        var id = Guid.NewGuid();
        var first = _waiter.WaitAsync(id, TimeSpan.FromMinutes(1), CancellationToken.None);
        var second = _waiter.WaitAsync(id, TimeSpan.FromMinutes(1), CancellationToken.None);
        var other = _waiter.WaitAsync(Guid.NewGuid(), TimeSpan.FromMinutes(1), CancellationToken.None);

        _waiter.Finished([id, Guid.NewGuid()]);

        await Task.WhenAll(first, second).WaitAsync(TimeSpan.FromSeconds(10));
        Assert.False(other.IsCompleted);
    }

    [Fact]
    public async Task WaitAsync_NothingAnnounced_EndsAtItsTimeout()
    {
        await _waiter.WaitAsync(Guid.NewGuid(), TimeSpan.FromMilliseconds(100), CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(10));
    }
}
