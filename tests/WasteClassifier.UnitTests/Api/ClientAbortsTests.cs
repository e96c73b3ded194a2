using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging.Abstractions;
using WasteClassifier.Api.Observability;

namespace WasteClassifier.UnitTests.Api;

/// <summary>Only the client's abort makes a cancellation a 499: the server's own cancellations and timeouts stay errors.</summary>
public sealed class ClientAbortsTests
{
    [Theory]
    [InlineData(typeof(TaskCanceledException))]
    [InlineData(typeof(IOException))]
    public async Task Invoke_ClientAborted_499WithoutTheException(Type thrown)
    {
        var context = new DefaultHttpContext { RequestAborted = new CancellationToken(canceled: true) };

        await Middleware(thrown).InvokeAsync(context);

        Assert.Equal(StatusCodes.Status499ClientClosedRequest, context.Response.StatusCode);
    }

    [Theory]
    [InlineData(typeof(TaskCanceledException))]
    [InlineData(typeof(IOException))]
    public async Task Invoke_ServerSideCancellationWithTheClientStillThere_StaysAnError(Type thrown)
    {
        var context = new DefaultHttpContext();

        await Assert.ThrowsAsync(thrown, () => Middleware(thrown).InvokeAsync(context));
    }

    private static ClientAborts Middleware(Type thrown) =>
        new(_ => throw (Exception)Activator.CreateInstance(thrown)!, NullLogger<ClientAborts>.Instance);
}
