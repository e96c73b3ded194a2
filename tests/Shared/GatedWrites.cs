using System.Data.Common;
using Microsoft.EntityFrameworkCore.Diagnostics;

namespace WasteClassifier.Testing;

/// <summary>
/// Once held, the next non-query waits inside its execution (its connection open) until released: a write still in flight
/// at a moment a test chooses. Linked into both test projects.
/// </summary>
public sealed class GatedWrites : DbCommandInterceptor
{
    private readonly TaskCompletionSource _entered = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _released = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _held;

    public Task Entered => _entered.Task;

    public void Hold() => _held = 1;

    public void Release() => _released.TrySetResult();

    public override async ValueTask<InterceptionResult<int>> NonQueryExecutingAsync(DbCommand command, CommandEventData eventData,
        InterceptionResult<int> result, CancellationToken cancellationToken = default)
    {
        if (Interlocked.Exchange(ref _held, 0) == 1)
        {
            _entered.TrySetResult();
            await _released.Task;
        }
        return result;
    }
}
