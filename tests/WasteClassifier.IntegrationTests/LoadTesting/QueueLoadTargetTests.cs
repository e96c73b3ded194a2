using System.Diagnostics;
using System.Security.Cryptography;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using RabbitMQ.Client;
using WasteClassifier.Api.Submissions;
using WasteClassifier.Infrastructure.Persistence;
using WasteClassifier.Infrastructure.Storage;
using WasteClassifier.IntegrationTests.Fixtures;
using WasteClassifier.LoadTesting.Images;
using WasteClassifier.LoadTesting.Targets;

namespace WasteClassifier.IntegrationTests.LoadTesting;

/// <summary>
/// Queue mode's target on the real servers, without a worker: what it stores before the run and what it records when a
/// send fails.
/// </summary>
public sealed class QueueLoadTargetTests : IAsyncLifetime
{
    private Dictionary<string, string?> _settings = null!;

    public async Task InitializeAsync()
    {
        _settings = new Dictionary<string, string?>(await TestServices.DeploymentSettingsAsync("qtarget"))
        {
            // 320×240 images pass, 640×480 ones are refused.
            ["Uploads:MaxPixels"] = "100000",
        };
        await using var deployment = DeploymentServices.Build(Configuration(), withBus: false);
        await deployment.MigrateDatabaseAsync();
        await deployment.GetRequiredService<IObjectStore>().EnsureReadyAsync(CancellationToken.None);
    }

    public async Task DisposeAsync()
    {
        if (_settings is null) return;
        await TestServices.DeleteClassifyQueuesAsync(_settings["Messaging:ClassifyQueue"]!);
        await TestServices.DropDatabaseAsync(_settings["Database:ConnectionString"]!);
    }

    [IntegrationFact]
    public async Task Prepare_OneImageTheApiWouldRefuse_NothingStored()
    {
        var good = ImageSet.Generated(2, 320, 240).All;
        var tooLarge = ImageSet.Generated(1, 640, 480, seed: 99).All[0];
        var images = new ImageSet([good[0], tooLarge, good[1]]);

        await using var target = new QueueLoadTarget(DeploymentServices.Build(Configuration(), withBus: true), "loadtest-refused", TimeSpan.FromMilliseconds(50));
        var error = await Assert.ThrowsAsync<InvalidDataException>(() => target.PrepareAsync(images, CancellationToken.None));

        Assert.Contains(tooLarge.FileName, error.Message);
        // The good images were not stored either: neither rows nor objects are left for a cleanup to miss.
        await using var deployment = DeploymentServices.Build(Configuration(), withBus: false);
        using var scope = deployment.CreateScope();
        Assert.False(await scope.ServiceProvider.GetRequiredService<ClassifierDbContext>().Images.AnyAsync());
        var store = scope.ServiceProvider.GetRequiredService<IObjectStore>();
        foreach (var image in good)
            Assert.Null(await store.GetAsync(ImageIntake.ObjectKeyFor(Convert.ToHexStringLower(SHA256.HashData(image.Content))), CancellationToken.None));
    }

    [IntegrationFact]
    public async Task Submit_SendFails_AcceptedAndItsRowLeftQueuedForTheRepublisher()
    {
        // The broker refuses the send: the classify queue's name is taken by an exchange of another type than the bus declares.
        var endpoints = await TestServices.GetAsync();
        var factory = new ConnectionFactory { HostName = endpoints.RabbitHost, Port = endpoints.RabbitPort, UserName = endpoints.RabbitUser, Password = endpoints.RabbitPassword };
        await using (var connection = await factory.CreateConnectionAsync())
        await using (var channel = await connection.CreateChannelAsync())
            await channel.ExchangeDeclareAsync(_settings["Messaging:ClassifyQueue"]!, ExchangeType.Topic, durable: false, autoDelete: true);
        var images = ImageSet.Generated(1, 320, 240);
        await using var target = new QueueLoadTarget(DeploymentServices.Build(Configuration(), withBus: true), "loadtest-unsent", TimeSpan.FromMilliseconds(50));
        await target.PrepareAsync(images, CancellationToken.None);

        var answer = await target.SubmitAsync(images.All[0], CancellationToken.None);

        // The API's re-publisher sends the row later and a worker classifies it: the report must follow it, not call it failed.
        Assert.Equal(ResponseKind.Accepted, answer.Kind);
        await using var deployment = DeploymentServices.Build(Configuration(), withBus: false);
        using var scope = deployment.CreateScope();
        var row = await scope.ServiceProvider.GetRequiredService<ClassifierDbContext>().Classifications.AsNoTracking().SingleAsync();
        Assert.Equal(Guid.Parse(answer.Id!), row.Id);
        Assert.Equal(ClassificationStatus.Queued, row.Status);
        Assert.Null(row.PublishedAt);
    }

    [IntegrationFact]
    public async Task Submit_SendFails_SentAgainByTheTargetOnceTheBrokerTakesIt()
    {
        // The broker refuses the send while the classify queue's name is taken by an exchange of another type; then that
        // exchange goes. No API runs, so no re-publisher: left to it, the row waited for the run's deadline.
        var endpoints = await TestServices.GetAsync();
        var factory = new ConnectionFactory { HostName = endpoints.RabbitHost, Port = endpoints.RabbitPort, UserName = endpoints.RabbitUser, Password = endpoints.RabbitPassword };
        var queue = _settings["Messaging:ClassifyQueue"]!;
        await using var connection = await factory.CreateConnectionAsync();
        await using (var channel = await connection.CreateChannelAsync())
            await channel.ExchangeDeclareAsync(queue, ExchangeType.Topic, durable: false, autoDelete: false);
        var images = ImageSet.Generated(1, 320, 240);
        await using var target = new QueueLoadTarget(DeploymentServices.Build(Configuration(), withBus: true), "loadtest-resent", TimeSpan.FromMilliseconds(50));
        await target.PrepareAsync(images, CancellationToken.None);

        var answer = await target.SubmitAsync(images.All[0], CancellationToken.None);
        Assert.Equal(ResponseKind.Accepted, answer.Kind);
        await using (var channel = await connection.CreateChannelAsync())
            await channel.ExchangeDeleteAsync(queue);

        await using var deployment = DeploymentServices.Build(Configuration(), withBus: false);
        var sent = Stopwatch.StartNew();
        Classification row;
        do
        {
            await Task.Delay(200);
            using var scope = deployment.CreateScope();
            row = await scope.ServiceProvider.GetRequiredService<ClassifierDbContext>().Classifications.AsNoTracking().SingleAsync();
            // Claimed for the resend, it is stamped as at its insert; once sent, with the time of the send.
        } while ((row.PublishedAt is null || row.PublishedAt == row.CreatedAt) && sent.Elapsed < TimeSpan.FromSeconds(30));
        Assert.NotEqual(row.CreatedAt, row.PublishedAt ?? row.CreatedAt);
        await using (var channel = await connection.CreateChannelAsync())
            Assert.Equal(1u, (await channel.QueueDeclarePassiveAsync(queue)).MessageCount);
    }

    [IntegrationFact]
    public async Task Resend_StampAfterTheSendFails_SentOnce()
    {
        // The broker refuses the first send (the queue's name is an exchange of another type), then takes the resend; the
        // row's stamp after that resend fails, as a trigger refuses every stamp but the insert's. The batch stayed in the
        // resend list and was sent again, each time: the workers would classify the row twice.
        var endpoints = await TestServices.GetAsync();
        var factory = new ConnectionFactory { HostName = endpoints.RabbitHost, Port = endpoints.RabbitPort, UserName = endpoints.RabbitUser, Password = endpoints.RabbitPassword };
        var queue = _settings["Messaging:ClassifyQueue"]!;
        await using var connection = await factory.CreateConnectionAsync();
        await using (var channel = await connection.CreateChannelAsync())
            await channel.ExchangeDeclareAsync(queue, ExchangeType.Topic, durable: false, autoDelete: false);
        await using var deployment = DeploymentServices.Build(Configuration(), withBus: false);
        using (var scope = deployment.CreateScope())
            await scope.ServiceProvider.GetRequiredService<ClassifierDbContext>().Database.ExecuteSqlRawAsync("""
                CREATE FUNCTION refuse_stamp() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                    IF NEW.published_at IS NOT NULL AND NEW.published_at <> NEW.created_at THEN RAISE EXCEPTION 'stamp refused'; END IF;
                    RETURN NEW;
                END $$;
                CREATE TRIGGER refuse_stamp BEFORE UPDATE ON classifications FOR EACH ROW EXECUTE FUNCTION refuse_stamp();
                """);
        var images = ImageSet.Generated(1, 320, 240);
        await using var target = new QueueLoadTarget(DeploymentServices.Build(Configuration(), withBus: true), "loadtest-stamp", TimeSpan.FromMilliseconds(50));
        await target.PrepareAsync(images, CancellationToken.None);

        Assert.Equal(ResponseKind.Accepted, (await target.SubmitAsync(images.All[0], CancellationToken.None)).Kind);
        await using (var channel = await connection.CreateChannelAsync())
            await channel.ExchangeDeleteAsync(queue);

        var sent = Stopwatch.StartNew();
        while (await MessagesAsync(connection, queue) == 0 && sent.Elapsed < TimeSpan.FromSeconds(30)) await Task.Delay(200);
        Assert.Equal(1u, await MessagesAsync(connection, queue));
        // Time for more resends: the next came 1 s after the failed stamp.
        await Task.Delay(TimeSpan.FromSeconds(3));
        Assert.Equal(1u, await MessagesAsync(connection, queue));
    }

    [IntegrationFact]
    public async Task Resend_DeadlinePassesWhileItWaitsForTheBroker_TheSendEndsThen()
    {
        // The broker refuses the sends (the queue's name is an exchange of another type): a resend waits for it up to the
        // send timeout, 5 s, and the run's deadline passes meanwhile. The send went on to its timeout, so a broker that
        // took messages again in that time got one after the deadline.
        _settings["Republish:UnsentAfterSeconds"] = "1";
        var endpoints = await TestServices.GetAsync();
        var factory = new ConnectionFactory { HostName = endpoints.RabbitHost, Port = endpoints.RabbitPort, UserName = endpoints.RabbitUser, Password = endpoints.RabbitPassword };
        var queue = _settings["Messaging:ClassifyQueue"]!;
        await using var connection = await factory.CreateConnectionAsync();
        await using (var channel = await connection.CreateChannelAsync())
            await channel.ExchangeDeclareAsync(queue, ExchangeType.Topic, durable: false, autoDelete: false);
        var images = ImageSet.Generated(1, 320, 240);
        await using var target = new QueueLoadTarget(DeploymentServices.Build(Configuration(), withBus: true), "loadtest-deadline", TimeSpan.FromMilliseconds(50));
        await target.PrepareAsync(images, CancellationToken.None);
        using var runDeadline = new CancellationTokenSource();
        Assert.Equal(ResponseKind.Accepted, (await target.SubmitAsync(images.All[0], runDeadline.Token)).Kind);

        // A resend claims the row (stamped as at its insert) just before its send.
        await using var deployment = DeploymentServices.Build(Configuration(), withBus: false);
        var waited = Stopwatch.StartNew();
        Classification row;
        do
        {
            await Task.Delay(20);
            using var scope = deployment.CreateScope();
            row = await scope.ServiceProvider.GetRequiredService<ClassifierDbContext>().Classifications.AsNoTracking().SingleAsync();
        } while (row.PublishedAt != row.CreatedAt && waited.Elapsed < TimeSpan.FromSeconds(30));
        Assert.Equal(row.CreatedAt, row.PublishedAt);
        await runDeadline.CancelAsync();

        // The send given up is un-stamped, the row left to the API's re-publisher.
        var deadlinePassed = Stopwatch.StartNew();
        do
        {
            await Task.Delay(20);
            using var scope = deployment.CreateScope();
            row = await scope.ServiceProvider.GetRequiredService<ClassifierDbContext>().Classifications.AsNoTracking().SingleAsync();
        } while (row.PublishedAt is not null && deadlinePassed.Elapsed < TimeSpan.FromSeconds(30));
        Assert.Null(row.PublishedAt);
        Assert.True(deadlinePassed.Elapsed < TimeSpan.FromSeconds(2.5), $"the send ended {deadlinePassed.Elapsed.TotalSeconds:F1} s after the deadline");
    }

    /// <summary>The messages in the queue; none while it is not declared.</summary>
    private static async Task<uint> MessagesAsync(IConnection connection, string queue)
    {
        await using var channel = await connection.CreateChannelAsync();
        try
        {
            return (await channel.QueueDeclarePassiveAsync(queue)).MessageCount;
        }
        catch (RabbitMQ.Client.Exceptions.OperationInterruptedException)
        {
            return 0;
        }
    }

    private IConfiguration Configuration() => new ConfigurationBuilder().AddInMemoryCollection(_settings).Build();
}
