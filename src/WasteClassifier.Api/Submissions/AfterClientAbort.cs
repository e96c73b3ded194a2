namespace WasteClassifier.Api.Submissions;

/// <summary>
/// A token for work that must finish once begun, even when the client goes away: recording the rows of objects already
/// stored. An object no row names is found by nothing (not by <c>wastectl loadtest --cleanup</c>), and it cannot simply be
/// deleted, as its key is the content hash: another upload of the same bytes may be about to record it. Never cancelled
/// while the client is there; <see cref="Grace"/> after the request's token is, so a hung dependency cannot hold the work
/// for ever.
/// </summary>
public sealed class AfterClientAbort : IDisposable
{
    public static readonly TimeSpan Grace = TimeSpan.FromSeconds(30);

    private readonly CancellationTokenSource _source = new();
    private readonly CancellationTokenRegistration _registration;

    public AfterClientAbort(CancellationToken requestAborted) =>
        _registration = requestAborted.Register(static source => ((CancellationTokenSource)source!).CancelAfter(Grace), _source);

    public CancellationToken Token => _source.Token;

    public void Dispose()
    {
        // The registration first: it waits for a running callback, which must not meet a disposed source.
        _registration.Dispose();
        _source.Dispose();
    }
}
