using System.Diagnostics;
using System.Security.Cryptography;
using MassTransit;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using RabbitMQ.Client;
using WasteClassifier.Api.Submissions;
using WasteClassifier.Infrastructure.Persistence;
using WasteClassifier.Infrastructure.Storage;
using WasteClassifier.IntegrationTests.Fixtures;
using WasteClassifier.IntegrationTests.Security;
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

    /// <summary>
    /// Takes the classify queue's name with an exchange of another type, so the broker refuses every send to it until the
    /// test deletes that exchange on the connection returned.
    /// </summary>
    private async Task<(IConnection Connection, string Queue)> BlockClassifyQueueAsync()
    {
        var queue = _settings["Messaging:ClassifyQueue"]!;
        var connection = await TestServices.ConnectToBrokerAsync();
        await using (var channel = await connection.CreateChannelAsync())
            await channel.ExchangeDeclareAsync(queue, ExchangeType.Topic, durable: false, autoDelete: false);
        return (connection, queue);
    }

    public async Task DisposeAsync()
    {
        if (_settings is null) return;
        await TestServices.DeleteClassifyQueuesAsync(_settings["Messaging:ClassifyQueue"]!);
        await TestServices.DropDatabaseAsync(_settings["Database:ConnectionString"]!);
    }

    [IntegrationFact]
    public async Task Prepare_BrokerNotAnswering_FailsWithinTheTimeoutNamingHostPortAndVirtualHost()
    {
        // A port nothing listens on: the bus's start waited for ever, printing MassTransit's stack on every retry.
        using var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        var port = ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        var configuration = new ConfigurationBuilder().AddConfiguration(Configuration())
            .AddInMemoryCollection([KeyValuePair.Create("Messaging:RabbitMq:Host", (string?)"127.0.0.1"), KeyValuePair.Create("Messaging:RabbitMq:Port", (string?)port.ToString())])
            .Build();
        var watch = Stopwatch.StartNew();

        await using var target = new QueueLoadTarget(DeploymentServices.Build(configuration, withBus: true), "loadtest-nobroker", TimeSpan.FromMilliseconds(50), TimeSpan.FromSeconds(2));
        var error = await Assert.ThrowsAsync<TargetUnavailableException>(() => target.PrepareAsync(ImageSet.Generated(1, 320, 240), CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(60)));

        Assert.Contains($"broker not answering at 127.0.0.1:{port}, virtual host '{_settings.GetValueOrDefault("Messaging:RabbitMq:VirtualHost") ?? "/"}'", error.Message);
        // The same error for wrong credentials: the advice covers them too.
        Assert.Contains("__Username and __Password", error.Message);
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(30), $"took {watch.Elapsed}");
        // The report's heading names the broker and queue ("queue mode against queue" named neither).
        Assert.Equal($"RabbitMQ at 127.0.0.1:{port}, virtual host '{_settings.GetValueOrDefault("Messaging:RabbitMq:VirtualHost") ?? "/"}', queue {_settings["Messaging:ClassifyQueue"]}", target.Description);
    }

    [RabbitTlsFact]
    public async Task Prepare_BrokersCertificateRefused_SaysSoAndNamesTheTlsSettings()
    {
        // The broker's TLS listener without its CA given: the certificate check refuses it, which looks like no answer.
        var configuration = new ConfigurationBuilder().AddConfiguration(Configuration())
            .AddInMemoryCollection([KeyValuePair.Create("Messaging:RabbitMq:Port", RabbitMqTlsTests.TlsPort), KeyValuePair.Create("Messaging:RabbitMq:UseTls", (string?)"true")])
            .Build();

        await using var target = new QueueLoadTarget(DeploymentServices.Build(configuration, withBus: true, logging: _ => { }), "loadtest-tls", TimeSpan.FromMilliseconds(50), TimeSpan.FromSeconds(2));
        var error = await Assert.ThrowsAsync<TargetUnavailableException>(() => target.PrepareAsync(ImageSet.Generated(1, 320, 240), CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(60)));

        Assert.Contains("or its TLS certificate was refused (see the 'RabbitMQ TLS' error above)", error.Message);
        Assert.Contains("__ServerName and __CaCertificatePath", error.Message);
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
    public async Task Submit_LongSourceAndFileName_RowRecordedWithThePlainFileName()
    {
        // A source of 128 characters before a file name of 200: "<source> <name>" was 329 characters for a 256-character
        // column, and PostgreSQL refused every row of the run.
        var source = "loadtest-" + new string('s', 119);
        var name = new string('n', 196) + ".jpg";
        var images = new ImageSet([ImageSet.Generated(1, 320, 240).All[0] with { FileName = name }]);
        await using var target = new QueueLoadTarget(DeploymentServices.Build(Configuration(), withBus: true), source, TimeSpan.FromMilliseconds(50));
        await target.PrepareAsync(images, CancellationToken.None);

        var answer = await target.SubmitAsync(images.All[0], CancellationToken.None);

        Assert.Equal(ResponseKind.Accepted, answer.Kind);
        await using var deployment = DeploymentServices.Build(Configuration(), withBus: false);
        using var scope = deployment.CreateScope();
        var row = await scope.ServiceProvider.GetRequiredService<ClassifierDbContext>().Classifications.AsNoTracking().Include(c => c.Image).SingleAsync();
        Assert.Equal(name, row.FileName);
        // The image keeps the run's prefix, by which a later --cleanup --source finds it.
        Assert.StartsWith($"{source} ", row.Image!.FileName);
    }

    [IntegrationFact]
    public async Task Submit_DatabaseRefusesTheRow_UnavailableSoAUserBacksOff()
    {
        // The database refuses the queued row (as one left read-only by a fail-over would): nothing was recorded or sent.
        // Answered as a refusal, a closed-loop user sent again at once, thousands of database_error a second.
        var images = ImageSet.Generated(1, 320, 240);
        await using var target = new QueueLoadTarget(DeploymentServices.Build(Configuration(), withBus: true), "loadtest-dberror", TimeSpan.FromMilliseconds(50));
        await target.PrepareAsync(images, CancellationToken.None);
        await using var deployment = DeploymentServices.Build(Configuration(), withBus: false);
        using (var scope = deployment.CreateScope())
            await scope.ServiceProvider.GetRequiredService<ClassifierDbContext>().Database.ExecuteSqlRawAsync("""
                CREATE FUNCTION refuse_row() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'read-only'; END $$;
                CREATE TRIGGER refuse_row BEFORE INSERT ON classifications FOR EACH ROW EXECUTE FUNCTION refuse_row();
                """);

        var answer = await target.SubmitAsync(images.All[0], CancellationToken.None);

        Assert.Equal((ResponseKind.Unavailable, "database_error"), (answer.Kind, answer.Reason));
    }

    [IntegrationFact]
    public async Task Submit_SendFails_AcceptedAndItsRowLeftQueuedForTheRepublisher()
    {
        // The broker refuses the send: the classify queue's name is taken by an exchange of another type than the bus declares.
        await using (var connection = await TestServices.ConnectToBrokerAsync())
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
        var blocked = await BlockClassifyQueueAsync();
        await using var connection = blocked.Connection;
        var queue = blocked.Queue;
        var images = ImageSet.Generated(1, 320, 240);
        await using var target = new QueueLoadTarget(DeploymentServices.Build(Configuration(), withBus: true), "loadtest-resent", TimeSpan.FromMilliseconds(50));
        await target.PrepareAsync(images, CancellationToken.None);

        var answer = await target.SubmitAsync(images.All[0], CancellationToken.None);
        Assert.Equal(ResponseKind.Accepted, answer.Kind);
        await using (var channel = await connection.CreateChannelAsync())
            await channel.ExchangeDeleteAsync(queue);

        // Claimed for the resend, it is stamped with the time of the claim, just before the send: the queue tells when it is sent.
        var sent = Stopwatch.StartNew();
        while (await MessagesAsync(connection, queue) == 0 && sent.Elapsed < TimeSpan.FromSeconds(30)) await Task.Delay(200);
        Assert.Equal(1u, await MessagesAsync(connection, queue));
        await using var deployment = DeploymentServices.Build(Configuration(), withBus: false);
        using var scope = deployment.CreateScope();
        var row = await scope.ServiceProvider.GetRequiredService<ClassifierDbContext>().Classifications.AsNoTracking().SingleAsync();
        Assert.NotEqual(row.CreatedAt, row.PublishedAt ?? row.CreatedAt);
    }

    [IntegrationFact]
    public async Task Resend_ThenTheRepublishersRound_SentOnce()
    {
        // The broker refuses the first send (the queue's name is an exchange of another type), then takes the resend. A
        // trigger refuses the load tester's moves of a row's stamp away from its insert's. The resend claimed the row by
        // stamping it as at its insert, and stamped the time of the send after it: that stamp refused, the row looked sent
        // at its insert, and the API's re-publisher, finding it stuck, sent it again. Its own stamp before the send, and
        // only that, tells the re-publisher the row is sent. The re-publisher's round runs at a fixed time past
        // StuckAfterSeconds since the insert, not in real time: a slow machine took longer than StuckAfterSeconds between
        // the claim and the round, and the claimed row was rightly sent again.
        _settings["Republish:StuckAfterSeconds"] = "60";
        var blocked = await BlockClassifyQueueAsync();
        await using var connection = blocked.Connection;
        var queue = blocked.Queue;
        await using var deployment = DeploymentServices.Build(Configuration(), withBus: true);
        using (var scope = deployment.CreateScope())
            await scope.ServiceProvider.GetRequiredService<ClassifierDbContext>().Database.ExecuteSqlRawAsync("""
                CREATE FUNCTION refuse_stamp() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                    IF current_setting('application_name') = 'wc-loadtest' AND OLD.published_at = OLD.created_at
                        AND NEW.published_at <> NEW.created_at THEN RAISE EXCEPTION 'stamp refused'; END IF;
                    RETURN NEW;
                END $$;
                CREATE TRIGGER refuse_stamp BEFORE UPDATE ON classifications FOR EACH ROW EXECUTE FUNCTION refuse_stamp();
                """);
        var loadTester = new ConfigurationBuilder().AddInMemoryCollection(_settings)
            .AddInMemoryCollection([KeyValuePair.Create("Database:ConnectionString", (string?)$"{_settings["Database:ConnectionString"]};Application Name=wc-loadtest")])
            .Build();
        var images = ImageSet.Generated(1, 320, 240);
        await using var target = new QueueLoadTarget(DeploymentServices.Build(loadTester, withBus: true), "loadtest-stamp", TimeSpan.FromMilliseconds(50));
        await target.PrepareAsync(images, CancellationToken.None);

        Assert.Equal(ResponseKind.Accepted, (await target.SubmitAsync(images.All[0], CancellationToken.None)).Kind);
        await Task.Delay(TimeSpan.FromSeconds(3));
        await using (var channel = await connection.CreateChannelAsync())
            await channel.ExchangeDeleteAsync(queue);

        var sent = Stopwatch.StartNew();
        while (await MessagesAsync(connection, queue) == 0 && sent.Elapsed < TimeSpan.FromSeconds(30)) await Task.Delay(200);
        Assert.Equal(1u, await MessagesAsync(connection, queue));
        await deployment.GetRequiredService<IBusControl>().StartAsync(CancellationToken.None);
        DateTime insertedAt;
        using (var scope = deployment.CreateScope())
            insertedAt = (await scope.ServiceProvider.GetRequiredService<ClassifierDbContext>().Classifications.AsNoTracking().SingleAsync()).CreatedAt;
        // Past StuckAfterSeconds since the insert, under it since the claim: the resend's first try waits FirstResendDelay.
        var republisher = new QueuedRepublisher(deployment.GetRequiredService<IServiceScopeFactory>(), Configuration(),
            new FixedClock(insertedAt.AddSeconds(60) + QueueLoadTarget.FirstResendDelay / 2), NullLogger<QueuedRepublisher>.Instance);
        Assert.Equal(0, await republisher.RepublishAsync(CancellationToken.None));
        // Time for more resends by the target.
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
        // Refused until the test's clean-up deletes the queue's name: this test never lets the broker take the send.
        await using var connection = (await BlockClassifyQueueAsync()).Connection;
        var images = ImageSet.Generated(1, 320, 240);
        await using var target = new QueueLoadTarget(DeploymentServices.Build(Configuration(), withBus: true), "loadtest-deadline", TimeSpan.FromMilliseconds(50));
        await target.PrepareAsync(images, CancellationToken.None);
        using var runDeadline = new CancellationTokenSource();
        Assert.Equal(ResponseKind.Accepted, (await target.SubmitAsync(images.All[0], runDeadline.Token)).Kind);

        // A resend claims the row (stamps it) just before its send.
        await using var deployment = DeploymentServices.Build(Configuration(), withBus: false);
        var waited = Stopwatch.StartNew();
        Classification row;
        do
        {
            await Task.Delay(20);
            using var scope = deployment.CreateScope();
            row = await scope.ServiceProvider.GetRequiredService<ClassifierDbContext>().Classifications.AsNoTracking().SingleAsync();
        } while (row.PublishedAt is null && waited.Elapsed < TimeSpan.FromSeconds(30));
        Assert.NotNull(row.PublishedAt);
        await runDeadline.CancelAsync();

        // The send given up gives the row back its stamp as read (none), the row left to the API's re-publisher.
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

    [IntegrationFact]
    public async Task Resend_SendAndTheGiveBackFail_TheRowStillTheTargetsAndSentOnceTheBrokerTakesIt()
    {
        // The broker refuses the resends (the queue's name is an exchange of another type), and a trigger refuses giving a
        // claim's stamp back. The row kept the failed claim's stamp and the next round took it for another sender's: with
        // no API running, it was never sent in the run.
        _settings["Republish:UnsentAfterSeconds"] = "1";
        var blocked = await BlockClassifyQueueAsync();
        await using var connection = blocked.Connection;
        var queue = blocked.Queue;
        await using var deployment = DeploymentServices.Build(Configuration(), withBus: false);
        using (var scope = deployment.CreateScope())
            await scope.ServiceProvider.GetRequiredService<ClassifierDbContext>().Database.ExecuteSqlRawAsync("""
                CREATE FUNCTION refuse_give_back() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                    IF OLD.published_at <> OLD.created_at AND NEW.published_at IS NULL THEN RAISE EXCEPTION 'give-back refused'; END IF;
                    RETURN NEW;
                END $$;
                CREATE TRIGGER refuse_give_back BEFORE UPDATE ON classifications FOR EACH ROW EXECUTE FUNCTION refuse_give_back();
                """);
        var images = ImageSet.Generated(1, 320, 240);
        await using var target = new QueueLoadTarget(DeploymentServices.Build(Configuration(), withBus: true), "loadtest-giveback", TimeSpan.FromMilliseconds(50));
        await target.PrepareAsync(images, CancellationToken.None);
        Assert.Equal(ResponseKind.Accepted, (await target.SubmitAsync(images.All[0], CancellationToken.None)).Kind);

        // Claimed again after a failed claim that kept its stamp: the target still takes the row for its own.
        var claims = new HashSet<DateTime>();
        var waited = Stopwatch.StartNew();
        while (claims.Count < 2 && waited.Elapsed < TimeSpan.FromSeconds(40))
        {
            await Task.Delay(20);
            using var scope = deployment.CreateScope();
            var row = await scope.ServiceProvider.GetRequiredService<ClassifierDbContext>().Classifications.AsNoTracking().SingleAsync();
            if (row.PublishedAt is { } stamp && stamp != row.CreatedAt) claims.Add(stamp);
        }
        Assert.Equal(2, claims.Count);
        await using (var channel = await connection.CreateChannelAsync())
            await channel.ExchangeDeleteAsync(queue);

        var sent = Stopwatch.StartNew();
        while (await MessagesAsync(connection, queue) == 0 && sent.Elapsed < TimeSpan.FromSeconds(30)) await Task.Delay(200);
        Assert.Equal(1u, await MessagesAsync(connection, queue));
    }

    private sealed class FixedClock(DateTime now) : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => new(DateTime.SpecifyKind(now, DateTimeKind.Utc));
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
