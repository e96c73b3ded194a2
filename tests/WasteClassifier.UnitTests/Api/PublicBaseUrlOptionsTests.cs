using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using WasteClassifier.Api.Apis;

namespace WasteClassifier.UnitTests.Api;

/// <summary>
/// <c>Api:PublicBaseUrl</c>: the root the embedded store's upload URLs are built on. Set, it replaces the request's scheme,
/// Host and path base (behind a TLS proxy those say http); unset, they are used as before; a value it cannot be stops the start.
/// </summary>
public sealed class PublicBaseUrlOptionsTests
{
    [Theory]
    [InlineData("https://waste.example.org", "https://waste.example.org")]
    [InlineData("https://waste.example.org/", "https://waste.example.org")]
    [InlineData("https://waste.example.org/classifier", "https://waste.example.org/classifier")]
    [InlineData("https://waste.example.org/classifier/", "https://waste.example.org/classifier")]
    [InlineData(" http://10.0.0.5:8080/a/b/ ", "http://10.0.0.5:8080/a/b")]
    public void Root_Set_ReplacesTheRequestsOwn(string setting, string root)
    {
        var options = PublicBaseUrlOptions.From(Configuration(setting));

        Assert.Equal(root, options.Root(Request("http", "api:8080", "/internal")));
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("  ")]
    public void Root_Unset_TheRequestsSchemeHostAndPathBase(string? setting)
    {
        var options = PublicBaseUrlOptions.From(Configuration(setting));

        Assert.Null(options.BaseUrl);
        Assert.Equal("http://api:8080/internal", options.Root(Request("http", "api:8080", "/internal")));
        Assert.Equal("http://localhost", options.Root(Request("http", "localhost", "")));
    }

    [Theory]
    [InlineData("waste.example.org")]
    [InlineData("/classifier")]
    [InlineData("//waste.example.org/classifier")]
    [InlineData("ftp://waste.example.org")]
    [InlineData("file:///srv/classifier")]
    [InlineData("https://waste.example.org/?tenant=a")]
    [InlineData("https://waste.example.org/classifier#top")]
    [InlineData("https://waste.example.org/classifier?")]
    [InlineData("https://user:secret@waste.example.org")]
    [InlineData("https://")]
    public void From_NotAnAbsoluteHttpUrlWithoutQueryOrFragment_RefusedAtStart(string setting)
    {
        var error = Assert.Throws<InvalidOperationException>(() => PublicBaseUrlOptions.From(Configuration(setting)));

        Assert.Contains("Api:PublicBaseUrl", error.Message);
        Assert.DoesNotContain("secret", error.Message);
    }

    private static IConfiguration Configuration(string? value) =>
        new ConfigurationBuilder().AddInMemoryCollection([new(PublicBaseUrlOptions.Key, value)]).Build();

    private static HttpRequest Request(string scheme, string host, string pathBase)
    {
        var request = new DefaultHttpContext().Request;
        request.Scheme = scheme;
        request.Host = new HostString(host);
        request.PathBase = pathBase;
        return request;
    }
}
