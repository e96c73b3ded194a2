using MassTransit;

namespace WasteClassifier.Testing;

/// <summary>
/// A broker that cannot be reached: every send endpoint lookup fails (with <paramref name="failure"/> if given). Linked into
/// both test projects.
/// </summary>
public sealed class RefusingSendEndpoints(Exception? failure = null) : ISendEndpointProvider
{
    public Task<ISendEndpoint> GetSendEndpoint(Uri address) => Task.FromException<ISendEndpoint>(failure ?? new InvalidOperationException("broker unreachable"));

    public ConnectHandle ConnectSendObserver(ISendObserver observer) => throw new NotSupportedException();
}
