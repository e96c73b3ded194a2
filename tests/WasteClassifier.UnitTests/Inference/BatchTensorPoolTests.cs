using WasteClassifier.Core.Inference;

namespace WasteClassifier.UnitTests.Inference;

public sealed class BatchTensorPoolTests
{
    [Fact]
    public void Rent_AfterReturn_ReusesTheSameBufferWhateverTheBatchSize()
    {
        var pool = new BatchTensorPool(maxRetained: 2);
        var first = pool.Rent(16 * 150_528);
        pool.Return(first);

        Assert.Same(first, pool.Rent(150_528));
    }

    [Fact]
    public void Return_MoreThanMaxRetained_KeepsOnlyThatMany()
    {
        var pool = new BatchTensorPool(maxRetained: 2);
        var rented = Enumerable.Range(0, 3).Select(_ => pool.Rent(100)).ToList();
        rented.ForEach(t => pool.Return(t));

        var again = Enumerable.Range(0, 3).Select(_ => pool.Rent(100)).ToList();

        Assert.Equal(2, again.Count(rented.Contains));
    }

    [Fact]
    public void Rent_LongerThanTheRetainedBuffer_DropsItForANewOne()
    {
        var pool = new BatchTensorPool(maxRetained: 2);
        var small = pool.Rent(100);
        pool.Return(small);

        var large = pool.Rent(200);

        Assert.NotSame(small, large);
        Assert.True(large.Length >= 200);
        pool.Return(large);
        Assert.Same(large, pool.Rent(200));
    }
}
