using MassTransit;

namespace WasteClassifier.UnitTests.Support;

/// <summary>A broker that cannot be reached: every send endpoint lookup fails (with <paramref name="failure"/> if given).</summary>
internal sealed class RefusingSendEndpoints(Exception? failure = null) : ISendEndpointProvider
{
    public Task<ISendEndpoint> GetSendEndpoint(Uri address) => Task.FromException<ISendEndpoint>(failure ?? new InvalidOperationException("broker unreachable"));

    public ConnectHandle ConnectSendObserver(ISendObserver observer) => throw new NotSupportedException();
}
