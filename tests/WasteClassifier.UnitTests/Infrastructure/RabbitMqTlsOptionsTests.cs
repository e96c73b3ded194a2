using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using WasteClassifier.Infrastructure.Messaging;

namespace WasteClassifier.UnitTests.Infrastructure;

/// <summary>Messaging:RabbitMq's TLS settings: their defaults, the checks at start, and the broker certificate's check.</summary>
public sealed class RabbitMqTlsOptionsTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("wc-rabbit-tls-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    private static IServiceCollection AddBus(Dictionary<string, string?> settings, string transport = "rabbitmq")
    {
        settings["Messaging:Transport"] = transport;
        return new ServiceCollection().AddClassifierBus(new ConfigurationBuilder().AddInMemoryCollection(settings).Build(), _ => { });
    }

    [Theory]
    [InlineData(false, null, 5672)]
    [InlineData(true, null, 5671)]
    [InlineData(true, (ushort)5673, 5673)]
    [InlineData(false, (ushort)5673, 5673)]
    public void PortOrDefault_Unset_IsTheTlsPortWithTlsAndThePlainPortWithout(bool useTls, ushort? port, ushort expected) =>
        Assert.Equal(expected, new RabbitMqOptions { UseTls = useTls, Port = port }.PortOrDefault);

    [Fact]
    public void ServerNameOrHost_Unset_IsTheHost()
    {
        Assert.Equal("rabbit.internal", new RabbitMqOptions { Host = "rabbit.internal" }.ServerNameOrHost);
        Assert.Equal("rabbitmq.example", new RabbitMqOptions { Host = "10.0.0.5", ServerName = "rabbitmq.example" }.ServerNameOrHost);
    }

    [Fact]
    public void Start_CaFileMissing_FailsNamingThePath()
    {
        var path = Path.Combine(_folder, "absent-ca.pem");
        var error = Assert.Throws<InvalidOperationException>(() => AddBus(new()
        {
            ["Messaging:RabbitMq:UseTls"] = "true",
            ["Messaging:RabbitMq:CaCertificatePath"] = path,
        }));
        Assert.Contains($"Messaging:RabbitMq:CaCertificatePath '{path}' does not exist", error.Message);
    }

    [Fact]
    public void Start_CaFileWithoutACertificate_Fails()
    {
        var path = Path.Combine(_folder, "not-a-ca.pem");
        File.WriteAllText(path, "not a certificate\n");
        var error = Assert.Throws<InvalidOperationException>(() => AddBus(new()
        {
            ["Messaging:RabbitMq:UseTls"] = "true",
            ["Messaging:RabbitMq:CaCertificatePath"] = path,
        }));
        Assert.Contains("holds no PEM certificate", error.Message);
    }

    [Theory]
    [InlineData("Messaging:RabbitMq:CaCertificatePath", "/etc/rabbitmq-ca/ca.pem", "apply only to TLS")]
    [InlineData("Messaging:RabbitMq:ServerName", "rabbitmq.example", "apply only to TLS")]
    // MassTransit itself turns TLS on for 5671, accepting an untrusted certificate: never without UseTls.
    [InlineData("Messaging:RabbitMq:Port", "5671", "set UseTls to true")]
    public void Start_TlsSettingWithoutUseTls_Fails(string key, string value, string expected)
    {
        var error = Assert.Throws<InvalidOperationException>(() => AddBus(new() { [key] = value }));
        Assert.Contains(expected, error.Message);
    }

    [Fact]
    public void Start_InMemoryTransport_IgnoresTheBrokerSettings() =>
        AddBus(new() { ["Messaging:RabbitMq:CaCertificatePath"] = Path.Combine(_folder, "absent.pem") }, transport: "inmemory");

    [Fact]
    public void Start_TlsWithAReadableCa_Passes()
    {
        using var ca = NewCa("CN=Test CA");
        var path = Path.Combine(_folder, "ca.pem");
        File.WriteAllText(path, ca.ExportCertificatePem());
        AddBus(new() { ["Messaging:RabbitMq:UseTls"] = "true", ["Messaging:RabbitMq:CaCertificatePath"] = path });
    }

    [Fact]
    public void Validate_ChainToTheGivenCa_IsAccepted()
    {
        using var ca = NewCa("CN=Test CA");
        using var server = NewServer(ca, "rabbit.internal");
        var log = new Lines();
        var validator = new BrokerCertificateValidator("rabbit.internal", [ca], "/ca.pem", log);

        Assert.True(validator.Validate(this, server, null, SslPolicyErrors.RemoteCertificateChainErrors));
        Assert.Empty(log.Entries);
    }

    [Fact]
    public void Validate_ChainToAnotherCa_IsRefusedAndLogged()
    {
        using var ca = NewCa("CN=Test CA");
        using var other = NewCa("CN=Other CA");
        using var server = NewServer(ca, "rabbit.internal");
        var log = new Lines();

        Assert.False(new BrokerCertificateValidator("rabbit.internal", [other], "/other.pem", log)
            .Validate(this, server, null, SslPolicyErrors.RemoteCertificateChainErrors));
        Assert.Contains("is not trusted", Assert.Single(log.Entries));
        Assert.Contains("'/other.pem' holds no CA it chains to", log.Entries[0]);
    }

    [Fact]
    public void Validate_NoCaGivenAndNotSystemTrusted_IsRefusedAndLogged()
    {
        using var ca = NewCa("CN=Test CA");
        using var server = NewServer(ca, "rabbit.internal");
        var log = new Lines();

        Assert.False(new BrokerCertificateValidator("rabbit.internal", [], null, log)
            .Validate(this, server, null, SslPolicyErrors.RemoteCertificateChainErrors));
        Assert.Contains("Set Messaging:RabbitMq:CaCertificatePath", Assert.Single(log.Entries));
    }

    [Fact]
    public void Validate_WrongName_IsRefusedEvenWhenTheChainIsTrusted()
    {
        using var ca = NewCa("CN=Test CA");
        using var server = NewServer(ca, "rabbit.internal");
        var log = new Lines();

        Assert.False(new BrokerCertificateValidator("other.internal", [ca], "/ca.pem", log)
            .Validate(this, server, null, SslPolicyErrors.RemoteCertificateNameMismatch));
        Assert.StartsWith("Error: RabbitMQ TLS: the broker's certificate does not carry the name 'other.internal' (it is for 'rabbit.internal')", Assert.Single(log.Entries));
    }

    private static X509Certificate2 NewCa(string subject)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest(subject, key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        return request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(30));
    }

    private static X509Certificate2 NewServer(X509Certificate2 ca, string name)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={name}", key, HashAlgorithmName.SHA256);
        var names = new SubjectAlternativeNameBuilder();
        names.AddDnsName(name);
        request.CertificateExtensions.Add(names.Build());
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], false));
        return request.Create(ca, DateTimeOffset.UtcNow.AddHours(-1), DateTimeOffset.UtcNow.AddDays(7), [1, 2, 3, 4]);
    }

    private sealed class Lines : ILogger
    {
        public List<string> Entries { get; } = [];

        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            Entries.Add($"{logLevel}: {formatter(state, exception)}");
    }
}
