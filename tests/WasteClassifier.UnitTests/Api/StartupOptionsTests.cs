using Microsoft.Extensions.Configuration;
using WasteClassifier.Api.Security;
using WasteClassifier.Api.Submissions;

namespace WasteClassifier.UnitTests.Api;

/// <summary>Settings that could never work are refused at start, naming the setting, instead of failing silently.</summary>
public sealed class StartupOptionsTests
{
    [Theory]
    [InlineData(-1)]
    [InlineData(0)] // every JSON route answered 413
    public void Uploads_MaxJsonBodyBytesBelowOne_Refused(long value)
    {
        var e = Assert.Throws<InvalidOperationException>(() => new UploadOptions { MaxJsonBodyBytes = value }.Validated());
        Assert.Contains($"Uploads:MaxJsonBodyBytes is {value}", e.Message);
    }

    [Theory]
    [InlineData(1, 1, "Uploads__MaxJsonBodyBytes")]
    [InlineData(2097152, 2097152, "Uploads__MaxJsonBodyBytes")]
    [InlineData(67108864, 2097152, "Uploads__MaxRequestBytes")] // never raises the request cap on the JSON routes
    public void Uploads_MaxJsonBodyBytes_AppliedAtMostMaxRequestBytes(long value, long effective, string setting)
    {
        var options = new UploadOptions { MaxRequestBytes = 2097152, MaxJsonBodyBytes = value }.Validated();
        Assert.Equal(effective, options.EffectiveJsonBodyBytes);
        Assert.Equal(setting, options.EffectiveJsonBodySetting);
    }

    [Fact]
    public void Uploads_OnlyMaxRequestBytesLowered_Accepted()
    {
        // Lowering only the request cap below the JSON default (1 MiB) refused to start; it now lowers both.
        var options = new UploadOptions { MaxRequestBytes = 524288 }.Validated();
        Assert.Equal(524288, options.EffectiveJsonBodyBytes);
    }

    [Fact]
    public void Uploads_Defaults_Accepted() => new UploadOptions().Validated();

    [Theory]
    [InlineData("classifier.local:8080")]
    [InlineData("http://classifier.local")]
    [InlineData("classifier.local/")]
    [InlineData("*.example.com")]
    public void Security_AllowedHostNotABareName_Refused(string host)
    {
        var e = Assert.Throws<InvalidOperationException>(() => new WebSecurityOptions { AllowedHosts = ["ok.example", host] }.Validated());
        Assert.Contains("Security:AllowedHosts:1", e.Message);
        Assert.Contains($"'{host}'", e.Message);
    }

    [Theory]
    [InlineData("ui.example.com")]
    [InlineData("ui.example.com:8443")]
    [InlineData("https://ui.example.com/app")]
    [InlineData("https://ui.example.com/?a=1")]
    [InlineData("ftp://ui.example.com")]
    [InlineData("https://user@ui.example.com")]
    public void Security_AllowedOriginNotAnOrigin_Refused(string origin)
    {
        var e = Assert.Throws<InvalidOperationException>(() => new WebSecurityOptions { AllowedOrigins = [origin] }.Validated());
        Assert.Contains("Security:AllowedOrigins:0", e.Message);
        Assert.Contains("http(s)://host[:port]", e.Message);
    }

    [Theory]
    [InlineData("AllowedHosts", "classifier.lan")]
    [InlineData("AllowedOrigins", "https://ui.example.com")]
    public void Security_PlainValueForAList_Refused(string list, string value)
    {
        // Security__AllowedHosts=classifier.lan (no index) was dropped by the binder, silently: the name stayed refused.
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?> { [$"Security:{list}"] = value }).Build();
        var e = Assert.Throws<InvalidOperationException>(() => WebSecurityOptions.Bind(configuration));
        Assert.Contains($"Security__{list}__0={value}", e.Message);
    }

    [Fact]
    public void Security_IndexedEntries_Bound()
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Security:AllowedHosts:0"] = "classifier.lan",
            ["Security:AllowedOrigins:0"] = "https://ui.example.com",
        }).Build();
        var options = WebSecurityOptions.Bind(configuration);
        Assert.Equal(["classifier.lan"], options.AllowedHosts);
        Assert.Equal(["https://ui.example.com"], options.AllowedOrigins);
    }

    [Fact]
    public void Security_WellFormedEntries_Accepted() =>
        new WebSecurityOptions
        {
            AllowedHosts = ["classifier.local", "classifier.local.", " lan-host ", "", "10.0.0.5"],
            AllowedOrigins = ["https://ui.example.com", "http://ui.example.com:8080/", ""],
        }.Validated();
}
