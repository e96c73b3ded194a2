using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using WasteClassifier.Infrastructure.Messaging;
using WasteClassifier.UnitTests.LoadTesting;

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

    [Fact]
    public void Validate_ExpiredCertificateFromTheGivenCa_IsRefused()
    {
        using var ca = NewCa("CN=Test CA", DateTimeOffset.UtcNow.AddDays(-30));
        using var server = NewServer(ca, "rabbit.internal", DateTimeOffset.UtcNow.AddDays(-20), DateTimeOffset.UtcNow.AddDays(-1));
        var log = new Lines();

        Assert.False(new BrokerCertificateValidator("rabbit.internal", [ca], "/ca.pem", log)
            .Validate(this, server, null, SslPolicyErrors.RemoteCertificateChainErrors));
        Assert.Contains("NotTimeValid", Assert.Single(log.Entries));
    }

    [Fact]
    public void Validate_ExpiredGivenCa_IsRefused()
    {
        using var ca = NewCa("CN=Test CA", DateTimeOffset.UtcNow.AddDays(-30), DateTimeOffset.UtcNow.AddDays(-1));
        using var server = NewServer(ca, "rabbit.internal", DateTimeOffset.UtcNow.AddDays(-20), DateTimeOffset.UtcNow.AddDays(-2));
        var log = new Lines();

        Assert.False(new BrokerCertificateValidator("rabbit.internal", [ca], "/ca.pem", log)
            .Validate(this, server, null, SslPolicyErrors.RemoteCertificateChainErrors));
        Assert.Contains("NotTimeValid", Assert.Single(log.Entries));
    }

    /// <summary>
    /// The broker sends along the CA that signed its certificate, as TLS servers do: that CA is only an extra certificate of the
    /// chain, never a trust anchor, whether or not another CA is given.
    /// </summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Validate_SignerSentOnlyByTheBroker_IsRefused(bool anotherCaGiven)
    {
        using var signer = NewCa("CN=Broker's own CA");
        using var other = NewCa("CN=Test CA");
        using var server = NewServer(signer, "rabbit.internal");
        using var chain = SystemChain(server, signer);
        var log = new Lines();

        Assert.False(new BrokerCertificateValidator("rabbit.internal", anotherCaGiven ? [other] : [], anotherCaGiven ? "/ca.pem" : null, log)
            .Validate(this, server, chain, SslPolicyErrors.RemoteCertificateChainErrors));
        Assert.Contains("UntrustedRoot", Assert.Single(log.Entries));
    }

    /// <summary>A CA made to look like the given one (same name) signs for the broker: its signature does not verify with the given CA's key.</summary>
    [Fact]
    public void Validate_ImpostorCaWithTheGivenCasName_IsRefused()
    {
        using var ca = NewCa("CN=Test CA");
        using var impostor = NewCa("CN=Test CA");
        using var server = NewServer(impostor, "rabbit.internal");
        using var chain = SystemChain(server, impostor);
        var log = new Lines();

        Assert.False(new BrokerCertificateValidator("rabbit.internal", [ca], "/ca.pem", log)
            .Validate(this, server, chain, SslPolicyErrors.RemoteCertificateChainErrors));
        Assert.Contains("is not trusted", Assert.Single(log.Entries));
    }

    [Fact]
    public void Validate_ChainToTheGivenCaWithTheBrokersChain_IsAccepted()
    {
        using var ca = NewCa("CN=Test CA");
        using var server = NewServer(ca, "rabbit.internal");
        using var chain = SystemChain(server, ca);
        var log = new Lines();

        Assert.True(new BrokerCertificateValidator("rabbit.internal", [ca], "/ca.pem", log)
            .Validate(this, server, chain, SslPolicyErrors.RemoteCertificateChainErrors));
        Assert.Empty(log.Entries);
    }

    [Fact]
    public void Validate_CertificateNotForServerAuthentication_IsRefused()
    {
        using var ca = NewCa("CN=Test CA");
        using var client = NewServer(ca, "rabbit.internal", usage: "1.3.6.1.5.5.7.3.2");
        var log = new Lines();

        Assert.False(new BrokerCertificateValidator("rabbit.internal", [ca], "/ca.pem", log)
            .Validate(this, client, null, SslPolicyErrors.RemoteCertificateChainErrors));
        Assert.Contains("NotValidForUsage", Assert.Single(log.Entries));
    }

    /// <summary>A CA file read as the settings read it (PEM, no keys): every CA in a bundle is trusted, and only those.</summary>
    [Fact]
    public void Validate_CaBundleFile_TrustsEachOfItsCas()
    {
        using var first = NewCa("CN=First CA");
        using var second = NewCa("CN=Second CA");
        using var outsider = NewCa("CN=Outsider CA");
        var path = Path.Combine(_folder, "bundle.pem");
        File.WriteAllText(path, "Bundle of the facility's CAs\n" + first.ExportCertificatePem() + "\n" + second.ExportCertificatePem() + "\n");
        var trusted = new RabbitMqOptions { UseTls = true, CaCertificatePath = path }.LoadCaCertificates();
        var validator = new BrokerCertificateValidator("rabbit.internal", trusted, path, new Lines());

        Assert.Equal(2, trusted.Count);
        foreach (var ca in new[] { first, second })
        {
            using var server = NewServer(ca, "rabbit.internal");
            Assert.True(validator.Validate(this, server, null, SslPolicyErrors.RemoteCertificateChainErrors));
        }
        using var stranger = NewServer(outsider, "rabbit.internal");
        Assert.False(validator.Validate(this, stranger, null, SslPolicyErrors.RemoteCertificateChainErrors));
    }

    [Fact]
    public void Start_CaFileWithACorruptCertificate_FailsNamingThePath()
    {
        var path = Path.Combine(_folder, "corrupt.pem");
        File.WriteAllText(path, "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n");
        var error = Assert.Throws<InvalidOperationException>(() => AddBus(new()
        {
            ["Messaging:RabbitMq:UseTls"] = "true",
            ["Messaging:RabbitMq:CaCertificatePath"] = path,
        }));
        Assert.Contains($"Messaging:RabbitMq:CaCertificatePath '{path}' could not be read as PEM certificates", error.Message);
    }

    /// <summary>
    /// The bus tries again every few seconds while the certificate is refused: the first refusal is logged with its detail,
    /// the same one again only once <see cref="BrokerCertificateValidator.RepeatLogInterval"/> has passed, with the count
    /// of those not logged.
    /// </summary>
    [Fact]
    public void Validate_SameRefusalOnEveryReconnect_LoggedFirstThenOncePerIntervalWithTheCountLeftOut()
    {
        using var ca = NewCa("CN=Test CA");
        using var other = NewCa("CN=Other CA");
        using var server = NewServer(ca, "rabbit.internal");
        var clock = new ManualClock();
        var log = new Lines();
        var validator = new BrokerCertificateValidator("rabbit.internal", [other], "/other.pem", log, clock);

        for (var attempt = 0; attempt < 10; attempt++)
        {
            Assert.False(validator.Validate(this, server, null, SslPolicyErrors.RemoteCertificateChainErrors));
            clock.Advance(TimeSpan.FromSeconds(5));
        }
        var first = Assert.Single(log.Entries);
        Assert.StartsWith("Error: RabbitMQ TLS: the broker's certificate (subject 'CN=rabbit.internal', issued by 'CN=Test CA') is not trusted: ", first);
        Assert.Contains("'/other.pem' holds no CA it chains to", first);

        // 50 s after the first: a second short of the interval, still left out; at the interval, logged with the count.
        clock.Advance(BrokerCertificateValidator.RepeatLogInterval - TimeSpan.FromSeconds(51));
        Assert.False(validator.Validate(this, server, null, SslPolicyErrors.RemoteCertificateChainErrors));
        Assert.Single(log.Entries);
        clock.Advance(TimeSpan.FromSeconds(1));
        Assert.False(validator.Validate(this, server, null, SslPolicyErrors.RemoteCertificateChainErrors));

        Assert.Equal(2, log.Entries.Count);
        Assert.Equal(first + " (refused 10 more time(s) for this reason, unlogged, in the 5 minutes since it was last logged)", log.Entries[1]);
    }

    /// <summary>A refusal that differs from the last one, or follows a certificate that passed, is news: logged at once.</summary>
    [Fact]
    public void Validate_RefusalForAnotherReasonOrAfterAnAcceptedCertificate_LoggedAtOnce()
    {
        using var ca = NewCa("CN=Test CA");
        using var server = NewServer(ca, "rabbit.internal");
        var log = new Lines();
        var validator = new BrokerCertificateValidator("rabbit.internal", [ca], "/ca.pem", log, new ManualClock());

        Assert.False(validator.Validate(this, server, null, SslPolicyErrors.RemoteCertificateNameMismatch));
        Assert.False(validator.Validate(this, null, null, SslPolicyErrors.RemoteCertificateNotAvailable));
        // The first reason again within the interval is not logged again: each reason once per interval, however they alternate.
        Assert.False(validator.Validate(this, server, null, SslPolicyErrors.RemoteCertificateNameMismatch));
        Assert.True(validator.Validate(this, server, null, SslPolicyErrors.None));
        Assert.False(validator.Validate(this, server, null, SslPolicyErrors.RemoteCertificateNameMismatch));

        Assert.Equal(3, log.Entries.Count);
        Assert.All(log.Entries, e => Assert.StartsWith("Error: RabbitMQ TLS: ", e));
        Assert.Contains("sent no certificate", log.Entries[1]);
        Assert.Equal(log.Entries[0], log.Entries[2]);
    }

    /// <summary>The chain the system's check hands the callback: built without trusting <paramref name="sent"/>, which the broker sent along.</summary>
    private static X509Chain SystemChain(X509Certificate2 server, X509Certificate2 sent)
    {
        var chain = new X509Chain();
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        chain.ChainPolicy.ExtraStore.Add(sent);
        Assert.False(chain.Build(server));
        return chain;
    }

    private static X509Certificate2 NewCa(string subject, DateTimeOffset? notBefore = null, DateTimeOffset? notAfter = null)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest(subject, key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        return request.CreateSelfSigned(notBefore ?? DateTimeOffset.UtcNow.AddDays(-1), notAfter ?? DateTimeOffset.UtcNow.AddDays(30));
    }

    private static X509Certificate2 NewServer(X509Certificate2 ca, string name, DateTimeOffset? notBefore = null, DateTimeOffset? notAfter = null,
        string usage = "1.3.6.1.5.5.7.3.1")
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={name}", key, HashAlgorithmName.SHA256);
        var names = new SubjectAlternativeNameBuilder();
        names.AddDnsName(name);
        request.CertificateExtensions.Add(names.Build());
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid(usage)], false));
        return request.Create(ca, notBefore ?? DateTimeOffset.UtcNow.AddHours(-1), notAfter ?? DateTimeOffset.UtcNow.AddDays(7), [1, 2, 3, 4]);
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
