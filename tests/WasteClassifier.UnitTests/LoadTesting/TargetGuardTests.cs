using Microsoft.Extensions.Configuration;
using WasteClassifier.LoadTesting;

namespace WasteClassifier.UnitTests.LoadTesting;

public sealed class TargetGuardTests
{
    [Theory]
    [InlineData("localhost", true)]
    [InlineData("127.0.0.1", true)]
    [InlineData("[::1]", true)]
    [InlineData("10.1.2.3", false)]
    [InlineData("203.0.113.9", false)]
    public void IsLoopback_Host_OnlyThisMachine(string host, bool expected) => Assert.Equal(expected, TargetGuard.IsLoopback(host));

    [Fact]
    public void Validate_RemoteTargetWithoutFlag_Refused()
    {
        var options = new LoadTestOptions { Target = new Uri("http://203.0.113.9/"), Users = 1 };
        Assert.Throws<ArgumentException>(options.Validate);
        (options with { AllowRemote = true }).Validate();
    }

    [Theory]
    [InlineData("Database:Provider=postgres", "Database:ConnectionString=Host=db.example.net;Username=u", "the database at db.example.net")]
    [InlineData("Database:Provider=postgres", "Database:ConnectionString=Host=localhost,10.0.0.7:5433;Username=u", "the database at 10.0.0.7:5433")]
    [InlineData("ObjectStore:Provider=minio", "ObjectStore:Endpoint=203.0.113.9:9000", "the object store at 203.0.113.9")]
    [InlineData("Messaging:Transport=rabbitmq", "Messaging:RabbitMq:Host=rabbit.example.net", "the broker at rabbit.example.net")]
    public void EnsureLocalDeployment_RemoteServer_RefusedNamingIt(string provider, string endpoint, string expected)
    {
        var error = Assert.Throws<ArgumentException>(() => TargetGuard.EnsureLocalDeployment(Configuration(provider, endpoint), usesBus: true));

        Assert.Contains(expected, error.Message);
        Assert.Contains("--allow-remote", error.Message);
    }

    [Fact]
    public void EnsureLocalDeployment_LocalOrEmbedded_Accepted()
    {
        TargetGuard.EnsureLocalDeployment(Configuration(), usesBus: true);
        TargetGuard.EnsureLocalDeployment(Configuration("Database:Provider=postgres", "Database:ConnectionString=Host=/var/run/postgresql;Username=u",
            "ObjectStore:Provider=minio", "ObjectStore:Endpoint=localhost:9000", "Messaging:Transport=rabbitmq", "Messaging:RabbitMq:Host=127.0.0.1"), usesBus: true);
        // The cleanup alone does not use the broker.
        TargetGuard.EnsureLocalDeployment(Configuration("Messaging:Transport=rabbitmq", "Messaging:RabbitMq:Host=rabbit.example.net"), usesBus: false);
    }

    private static IConfiguration Configuration(params string[] settings) =>
        new ConfigurationBuilder().AddInMemoryCollection(settings.Select(s => s.Split('=', 2)).Select(p => KeyValuePair.Create(p[0], (string?)p[1]))).Build();
}
