using System.Net.Sockets;
using Microsoft.EntityFrameworkCore.Storage;
using WasteClassifier.Api.Security;

namespace WasteClassifier.UnitTests.Api;

public sealed class DependencyFailuresTests
{
    [Fact]
    public void IsUnavailable_RetriesExhaustedOnAnUnreachableDatabase_True()
    {
        // What EF Core's retrying strategy throws when PostgreSQL keeps refusing (e.g. "too many clients"): a 503, not a 500.
        var exhausted = new RetryLimitExceededException("retries exceeded", new SocketException((int)SocketError.ConnectionRefused));

        Assert.True(DependencyFailures.IsUnavailable(exhausted));
        Assert.False(DependencyFailures.IsUnavailable(new RetryLimitExceededException("retries exceeded", new ArgumentException("bug"))));
    }
}
