using System.Reflection;
using MassTransit;

namespace WasteClassifier.Testing;

/// <summary>A broker that takes every publish and keeps the messages. Linked into both test projects.</summary>
public class RecordingPublishEndpoint : DispatchProxy
{
    private List<object> _published = [];

    public static IPublishEndpoint Create(List<object> published)
    {
        var endpoint = Create<IPublishEndpoint, RecordingPublishEndpoint>();
        ((RecordingPublishEndpoint)(object)endpoint)._published = published;
        return endpoint;
    }

    protected override object? Invoke(MethodInfo? targetMethod, object?[]? args)
    {
        if (targetMethod?.Name != nameof(IPublishEndpoint.Publish) || targetMethod.ReturnType != typeof(Task)) throw new NotSupportedException(targetMethod?.Name);
        lock (_published) _published.Add(args![0]!);
        return Task.CompletedTask;
    }
}
