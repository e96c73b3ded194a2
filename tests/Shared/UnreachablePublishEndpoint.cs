using System.Reflection;
using MassTransit;

namespace WasteClassifier.Testing;

/// <summary>
/// A broker that cannot take a publish: every <c>Publish</c> fails at once, or, with <see cref="Hang"/>, waits until its
/// cancellation token is cancelled (a broker that is down holds a publish). Linked into both test projects.
/// </summary>
public class UnreachablePublishEndpoint : DispatchProxy
{
    private bool _hang;

    public static IPublishEndpoint Failing() => Create(hang: false);

    public static IPublishEndpoint Hang() => Create(hang: true);

    private static IPublishEndpoint Create(bool hang)
    {
        var endpoint = Create<IPublishEndpoint, UnreachablePublishEndpoint>();
        ((UnreachablePublishEndpoint)(object)endpoint)._hang = hang;
        return endpoint;
    }

    protected override object? Invoke(MethodInfo? targetMethod, object?[]? args)
    {
        if (targetMethod?.ReturnType != typeof(Task)) throw new NotSupportedException(targetMethod?.Name);
        if (!_hang) return Task.FromException(new InvalidOperationException("broker unreachable"));
        var token = args?.OfType<CancellationToken>().FirstOrDefault() ?? CancellationToken.None;
        return Task.Delay(Timeout.Infinite, token);
    }
}
