using WasteClassifier.Components.Models;
using WasteClassifier.Core.Inference;

namespace WasteClassifier.UnitTests.Components;

public sealed class ModelLeaseTests
{
    [Fact]
    public void Release_ByProviderWhileABatchHoldsALease_DisposesOnlyWhenTheBatchEnds()
    {
        var classifier = new CountingClassifier();
        var model = new SharedModel(classifier);
        Assert.True(model.TryAcquire());
        var lease = new ModelLease(model);

        model.Release(); // the provider lets go (swap or shutdown)
        Assert.Equal(0, classifier.Disposals);

        lease.Dispose();
        lease.Dispose(); // twice is harmless
        Assert.Equal(1, classifier.Disposals);
        Assert.False(model.TryAcquire());
    }

    [Fact]
    public void Dispose_ProviderTwiceWhileABatchHoldsALease_KeepsTheModelUntilTheBatchEnds()
    {
        // The container disposes the provider once per registration (concrete type and IModelProvider).
        var classifier = new CountingClassifier();
        var model = new SharedModel(classifier);
        var provider = new RegistryModelProvider(null!, new ModelOptions(), new WasteClassifier.Infrastructure.Hosting.ServiceOptions(), TimeProvider.System,
            Microsoft.Extensions.Logging.Abstractions.NullLogger<RegistryModelProvider>.Instance);
        provider.UseForTests(model);
        Assert.True(model.TryAcquire());
        var lease = new ModelLease(model);

        provider.Dispose();
        provider.Dispose();
        Assert.Equal(0, classifier.Disposals);

        lease.Dispose();
        Assert.Equal(1, classifier.Disposals);
    }

    private sealed class CountingClassifier : IImageClassifier
    {
        public int Disposals { get; private set; }

        public ModelCard Card => throw new NotSupportedException();

        public float[][] Classify(ReadOnlyMemory<float> batch, int count) => throw new NotSupportedException();

        public void Dispose() => Disposals++;
    }
}
