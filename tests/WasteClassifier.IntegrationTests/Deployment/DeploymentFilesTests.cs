using System.Text.Json;
using System.Text.RegularExpressions;
using WasteClassifier.Core.Inference;
using WasteClassifier.Components.Observability;
using WasteClassifier.Infrastructure.Hosting;
using WasteClassifier.Infrastructure.Persistence;
using static WasteClassifier.IntegrationTests.Deployment.DeploymentTools;

namespace WasteClassifier.IntegrationTests.Deployment;

/// <summary>
/// No Docker engine or cluster runs in CI, so the deployment files are checked for what can be checked: Compose parses
/// and scales, kustomize renders, and every workload has probes, resource limits, a non-root user and pinned images.
/// </summary>
public sealed partial class DeploymentFilesTests
{
    private static readonly string[] Services = ["api", "worker", "trainer"];

    // Every secret Compose needs; none has a default, so a deployment never runs on credentials published here.
    private static readonly string[] ComposeSecrets = ["ADMIN_KEY_HASH", "POSTGRES_PASSWORD", "RABBITMQ_PASSWORD", "MINIO_ROOT_PASSWORD"];

    private static Dictionary<string, string?> ComposeEnvironment(string? without = null)
    {
        var environment = new Dictionary<string, string?>
        {
            ["ADMIN_KEY_HASH"] = "sha256:" + new string('a', 64),
            ["POSTGRES_PASSWORD"] = "pg-test-secret",
            ["RABBITMQ_PASSWORD"] = "mq-test-secret",
            ["MINIO_ROOT_PASSWORD"] = "s3-test-secret",
            ["API_PUBLISH"] = null,
            ["MINIO_S3_PUBLISH"] = null,
        };
        if (without is not null) environment[without] = null;
        return environment;
    }

    [DeploymentFact]
    public async Task Compose_Config_ParsesWithHealthChecksNamedVolumesAndAScalableWorker()
    {
        var environment = ComposeEnvironment();
        var adminKeyHash = environment["ADMIN_KEY_HASH"];
        var yaml = await RunAsync(environment, "docker-compose", "-f", "docker-compose.yml", "config");
        var compose = Documents(yaml).Single();
        var services = (Dictionary<object, object>)compose["services"];
        Assert.Superset(new HashSet<string>(["rabbitmq", "postgres", "minio", .. Services]), services.Keys.Select(k => (string)k).ToHashSet());
        foreach (var (name, service) in services)
        {
            Assert.True(At(service, "healthcheck", "test") is not null, $"{name} has no health check");
            var image = (string?)At(service, "image");
            Assert.True(image is not null && IsPinned(image), $"{name}: image '{image}' is not pinned to a tag");
            // A service that exits on a start-up failure (the migration lock's deadline, a server not up) comes back by itself.
            Assert.True((string?)At(service, "restart") == "unless-stopped", $"{name} has no restart policy (restart: unless-stopped)");
        }
        foreach (var name in Services) Assert.NotNull(At(services[name], "build"));
        // --scale worker=N needs no fixed container name and no published host port.
        Assert.Null(At(services["worker"], "container_name"));
        Assert.Null(At(services["worker"], "ports"));
        var volumes = ((Dictionary<object, object>)compose["volumes"]).Keys.Cast<string>().ToList();
        Assert.Superset(new HashSet<string>(["postgres-data", "rabbitmq-data", "minio-data"]), volumes.ToHashSet());
        // The management UI is published (long or short port syntax, depending on the docker-compose version).
        Assert.Contains(List(At(services["rabbitmq"], "ports")), p => (At(p, "target") ?? p).ToString()!.Contains("15672"));
        // MinIO's image ships mc but no curl or wget since late 2023: a check running those never passed.
        Assert.Equal(["CMD", "mc", "ready", "local"], List(At(services["minio"], "healthcheck", "test")).Select(part => part.ToString()));
        // Clients outside the Compose network can use the API's presigned upload URLs: signed for a published endpoint.
        Assert.Contains(List(At(services["minio"], "ports")), p => (At(p, "target") ?? p).ToString()!.Contains("9000"));
        Assert.Equal(Environment.GetEnvironmentVariable("OBJECT_STORE_PUBLIC_ENDPOINT") ?? "localhost:9000",
            At(services["api"], "environment", "ObjectStore__PublicEndpoint"));
        // Behind Docker's port proxy no caller is on loopback: admin calls need a configured admin key.
        Assert.Equal("admin", At(services["api"], "environment", "Auth__Keys__0__Role"));
        Assert.Equal(adminKeyHash, At(services["api"], "environment", "Auth__Keys__0__Hash"));
        // Every published port is on loopback by default (short syntax "127.0.0.1:8080:8080/tcp" or long with host_ip).
        foreach (var (name, service) in services)
            foreach (var port in List(At(service, "ports")))
                Assert.True((At(port, "host_ip") ?? port).ToString()!.StartsWith("127.0.0.1", StringComparison.Ordinal), $"{name} publishes {port} beyond loopback");
    }

    [DeploymentFact]
    public async Task Compose_Config_EverySecretMissing_RefusesNamingIt()
    {
        foreach (var secret in ComposeSecrets)
        {
            var (exitCode, _, stderr) = await TryRunAsync(ComposeEnvironment(without: secret), "docker-compose", "-f", "docker-compose.yml", "config");
            Assert.True(exitCode != 0, $"docker-compose config ran without {secret}");
            Assert.Contains(secret, stderr);
        }
        // The passwords reach both the server and the services that connect to it.
        var services = (Dictionary<object, object>)Documents(await RunAsync(ComposeEnvironment(), "docker-compose", "-f", "docker-compose.yml", "config")).Single()["services"];
        Assert.Equal("pg-test-secret", At(services["postgres"], "environment", "POSTGRES_PASSWORD"));
        Assert.Equal("mq-test-secret", At(services["rabbitmq"], "environment", "RABBITMQ_DEFAULT_PASS"));
        Assert.Equal("s3-test-secret", At(services["minio"], "environment", "MINIO_ROOT_PASSWORD"));
        foreach (var name in Services)
        {
            Assert.Contains("Password=pg-test-secret", (string)At(services[name], "environment", "Database__ConnectionString")!);
            Assert.Equal("mq-test-secret", At(services[name], "environment", "Messaging__RabbitMq__Password"));
            Assert.Equal("s3-test-secret", At(services[name], "environment", "ObjectStore__SecretKey"));
        }
    }

    [DeploymentFact]
    public async Task Kustomize_Render_OnlyTheApiPortIsOpenAndClassificationNeedsAKey()
    {
        var documents = Documents(await RunAsync("kubectl", "kustomize", "k8s"));
        var policies = documents.Where(d => (string)d["kind"] == "NetworkPolicy").ToList();
        foreach (var deployment in documents.Where(d => (string)d["kind"] == "Deployment"))
        {
            var name = (string)At(deployment, "metadata", "name")!;
            var labels = (Dictionary<object, object>)At(deployment, "spec", "template", "metadata", "labels")!;
            var selecting = policies.Where(p => ((Dictionary<object, object>)At(p, "spec", "podSelector", "matchLabels")!)
                .All(l => labels.TryGetValue(l.Key, out var value) && Equals(value, l.Value))).ToList();
            Assert.True(selecting.Count > 0, $"{name}: no NetworkPolicy selects its pods, so any pod in the cluster can connect to them");
            Assert.All(selecting, p => Assert.Contains("Ingress", List(At(p, "spec", "policyTypes")).Cast<string>()));
            var rules = selecting.SelectMany(p => List(At(p, "spec", "ingress"))).ToList();
            // Every rule names its ports; only the API's admits any source.
            Assert.All(rules, r => Assert.NotEmpty(List(At(r, "ports"))));
            if (name == "api") Assert.Equal(["http"], rules.SelectMany(r => List(At(r, "ports"))).Select(p => At(p, "port")!.ToString()!).Distinct());
            else Assert.All(rules, r => Assert.NotEmpty(List(At(r, "from"))));
        }
        var config = documents.Single(d => (string)d["kind"] == "ConfigMap" && ((string)At(d, "metadata", "name")!).StartsWith("wasteclassifier-config"));
        Assert.Equal("true", At(config, "data", "Auth__RequireKeyForClassification"));
    }

    [DeploymentFact]
    public async Task Kustomize_Render_EveryWorkloadHasProbesLimitsNonRootAndPinnedImages()
    {
        var documents = Documents(await RunAsync("kubectl", "kustomize", "k8s"));
        var deployments = documents.Where(d => (string)d["kind"] == "Deployment").ToList();
        Assert.Equal(Services.Order(), deployments.Select(d => (string)At(d, "metadata", "name")!).Order());
        foreach (var deployment in deployments)
        {
            var name = (string)At(deployment, "metadata", "name")!;
            Assert.Equal("true", At(deployment, "spec", "template", "spec", "securityContext", "runAsNonRoot")?.ToString());
            var containers = List(At(deployment, "spec", "template", "spec", "containers")).ToList();
            Assert.NotEmpty(containers);
            foreach (var container in containers)
            {
                foreach (var probe in new[] { "livenessProbe", "readinessProbe" })
                    Assert.True(At(container, probe) is not null, $"{name}: no {probe}");
                foreach (var path in new[] { "requests/cpu", "requests/memory", "limits/cpu", "limits/memory" })
                    Assert.True(At(container, ["resources", .. path.Split('/')]) is not null, $"{name}: no resources.{path.Replace('/', '.')}");
                var image = (string)At(container, "image")!;
                Assert.True(IsPinned(image), $"{name}: image '{image}' is not pinned");
            }
        }

        var scaled = documents.Single(d => (string)d["kind"] == "ScaledObject");
        Assert.Equal("worker", At(scaled, "spec", "scaleTargetRef", "name"));
        var trigger = List(At(scaled, "spec", "triggers")).Single();
        Assert.Equal("rabbitmq", At(trigger, "type"));
        Assert.Equal("classify-image", At(trigger, "metadata", "queueName"));
        // KEDA must watch the queue the workers consume: the configmap names it too, so a rename changes both.
        var config = documents.Single(d => (string)d["kind"] == "ConfigMap" && ((string)At(d, "metadata", "name")!).StartsWith("wasteclassifier-config"));
        Assert.Equal(At(trigger, "metadata", "queueName"), At(config, "data", "Messaging__ClassifyQueue"));
        Assert.Contains(documents, d => (string)d["kind"] == "PodDisruptionBudget" && (string?)At(d, "spec", "selector", "matchLabels", "app.kubernetes.io/component") == "worker");
        Assert.Contains(documents, d => (string)d["kind"] == "Service" && (string?)At(d, "metadata", "name") == "api");
        Assert.All(documents.Where(d => (string)d["kind"] != "Namespace"), d => Assert.Equal("wasteclassifier", At(d, "metadata", "namespace")));
        // The Secrets are applied once from a filled-in copy of secret.example.yaml: apply -k would overwrite them with change-me.
        Assert.DoesNotContain(documents, d => (string)d["kind"] == "Secret");
    }

    [DeploymentFact]
    public async Task Kustomize_Render_EveryPodAtItsMostReplicasFitsPostgresDefaultConnections()
    {
        // PostgreSQL's default max_connections is 100, 3 of them reserved for superusers; leave 5 for wastectl, psql and
        // migrations. Each process opens up to its Database__MaxPoolSize (30 when unset); KEDA's maximum counts for the workers,
        // and a rollout's surge pods for every Deployment.
        const int available = 100 - 3 - 5;
        var documents = Documents(await RunAsync("kubectl", "kustomize", "k8s"));
        var config = documents.Single(d => (string)d["kind"] == "ConfigMap" && ((string)At(d, "metadata", "name")!).StartsWith("wasteclassifier-config"));
        var scaled = documents.Where(d => (string)d["kind"] == "ScaledObject")
            .ToDictionary(d => (string)At(d, "spec", "scaleTargetRef", "name")!, d => int.Parse(At(d, "spec", "maxReplicaCount")!.ToString()!));
        var connections = new List<string>();
        var total = 0;
        foreach (var deployment in documents.Where(d => (string)d["kind"] == "Deployment"))
        {
            var name = (string)At(deployment, "metadata", "name")!;
            var replicas = scaled.TryGetValue(name, out var most) ? most : int.Parse(At(deployment, "spec", "replicas")?.ToString() ?? "1");
            // A rolling update adds up to maxSurge pods beside them (25 % rounded up when unset); Recreate adds none.
            replicas += (string?)At(deployment, "spec", "strategy", "type") == "Recreate" ? 0
                : Surge(At(deployment, "spec", "strategy", "rollingUpdate", "maxSurge")?.ToString() ?? "25%", replicas);
            foreach (var container in List(At(deployment, "spec", "template", "spec", "containers")))
            {
                var pool = List(At(container, "env")).FirstOrDefault(e => (string?)At(e, "name") == "Database__MaxPoolSize") is { } env
                    ? At(env, "value")!.ToString()!
                    : At(config, "data", "Database__MaxPoolSize")?.ToString() ?? "30";
                total += replicas * int.Parse(pool);
                connections.Add($"{name}: {replicas} x {pool}");
            }
        }
        Assert.True(total <= available, $"{total} connections at most ({string.Join(", ", connections)}), over the {available} available");

        static int Surge(string maxSurge, int replicas) =>
            maxSurge.EndsWith('%') ? (int)Math.Ceiling(replicas * int.Parse(maxSurge.TrimEnd('%')) / 100.0) : int.Parse(maxSurge);
    }

    [DeploymentFact]
    public async Task Kustomize_Render_AMigrationLockWaitEndsBeforeTheStartupProbeRestartsThePod()
    {
        // A pod waiting for another's migration should fail with the lock's error (naming the holder and the setting), not
        // be restarted by its startup probe first without it: the wait, after start-up's patience with a database still
        // coming up, must end within the probe's window.
        var documents = Documents(await RunAsync("kubectl", "kustomize", "k8s"));
        var config = documents.Single(d => (string)d["kind"] == "ConfigMap" && ((string)At(d, "metadata", "name")!).StartsWith("wasteclassifier-config"));
        foreach (var deployment in documents.Where(d => (string)d["kind"] == "Deployment"))
        {
            var name = (string)At(deployment, "metadata", "name")!;
            foreach (var container in List(At(deployment, "spec", "template", "spec", "containers")))
            {
                var probe = At(container, "startupProbe");
                Assert.True(probe is not null, $"{name}: no startupProbe");
                // Kubernetes' defaults: no initial delay, every 10 s, 3 failures.
                var window = Seconds(At(probe, "initialDelaySeconds"), 0) + Seconds(At(probe, "periodSeconds"), 10) * Seconds(At(probe, "failureThreshold"), 3);
                var lockWait = Seconds(List(At(container, "env")).FirstOrDefault(e => (string?)At(e, "name") == "Database__MigrationLockTimeoutSeconds") is { } env
                    ? At(env, "value") : At(config, "data", "Database__MigrationLockTimeoutSeconds"), new DatabaseOptions().MigrationLockTimeoutSeconds);
                Assert.True(lockWait > 0, $"{name}: Database__MigrationLockTimeoutSeconds 0 waits for ever; the startup probe restarts the pod after {window} s");
                Assert.True(lockWait + InfrastructureStartup.DefaultPatience.TotalSeconds <= window,
                    $"{name}: a migration lock wait of {lockWait} s, after {InfrastructureStartup.DefaultPatience.TotalSeconds} s for the database, outlasts the startup probe's {window} s");
            }
        }

        static int Seconds(object? value, int fallback) => value is null ? fallback : int.Parse(value.ToString()!, System.Globalization.CultureInfo.InvariantCulture);
    }

    [DeploymentFact]
    public async Task Kustomize_Render_ReadinessProbesWaitLongerThanAComponentCheck()
    {
        // A component that does not answer is reported at Health__CheckTimeoutSeconds: the probe must wait longer (by the
        // time to write the answer on a busy pod), or it fails on its own timeout with no body saying which component hung.
        var documents = Documents(await RunAsync("kubectl", "kustomize", "k8s"));
        var config = documents.Single(d => (string)d["kind"] == "ConfigMap" && ((string)At(d, "metadata", "name")!).StartsWith("wasteclassifier-config"));
        foreach (var deployment in documents.Where(d => (string)d["kind"] == "Deployment"))
        {
            var name = (string)At(deployment, "metadata", "name")!;
            foreach (var container in List(At(deployment, "spec", "template", "spec", "containers")))
            {
                var probe = At(container, "readinessProbe");
                Assert.True(probe is not null, $"{name}: no readinessProbe");
                // Kubernetes' default timeout is 1 s.
                var probeTimeout = At(probe, "timeoutSeconds") is { } set ? double.Parse(set.ToString()!, System.Globalization.CultureInfo.InvariantCulture) : 1;
                var limit = List(At(container, "env")).FirstOrDefault(e => (string?)At(e, "name") == "Health__CheckTimeoutSeconds") is { } env
                    ? At(env, "value") : At(config, "data", "Health__CheckTimeoutSeconds");
                var checkTimeout = limit is null ? new HealthOptions().CheckTimeoutSeconds : double.Parse(limit.ToString()!, System.Globalization.CultureInfo.InvariantCulture);
                Assert.True(checkTimeout + AnswerMarginSeconds <= probeTimeout, $"{name}: a component check may take {checkTimeout} s, the readiness probe waits {probeTimeout} s");
            }
        }
    }

    [DeploymentFact]
    public async Task Compose_Config_HealthChecksWaitLongerThanAComponentCheck()
    {
        // As the Kubernetes probes above: the Compose health check (curl /health/ready) must outwait a component's limit.
        var services = (Dictionary<object, object>)Documents(await RunAsync(ComposeEnvironment(), "docker-compose", "-f", "docker-compose.yml", "config")).Single()["services"];
        foreach (var name in Services)
        {
            var timeout = At(services[name], "healthcheck", "timeout");
            Assert.True(timeout is not null, $"{name}: its health check has no timeout (Compose waits 30 s)");
            var checkTimeout = At(services[name], "environment", "Health__CheckTimeoutSeconds") is { } limit
                ? double.Parse(limit.ToString()!, System.Globalization.CultureInfo.InvariantCulture) : new HealthOptions().CheckTimeoutSeconds;
            var healthTimeout = ComposeSeconds(timeout.ToString()!);
            Assert.True(checkTimeout + AnswerMarginSeconds <= healthTimeout, $"{name}: a component check may take {checkTimeout} s, the health check waits {healthTimeout} s");
        }
    }

    /// <summary>What a probe must leave past a component check's limit for the answer to be written and read.</summary>
    private const double AnswerMarginSeconds = 1;

    /// <summary>A Compose duration ("5s", "1m30s", "500ms") in seconds.</summary>
    private static double ComposeSeconds(string duration)
    {
        var parts = ComposeDuration().Matches(duration);
        Assert.True(parts.Count > 0 && string.Concat(parts.Select(p => p.Value)) == duration, $"'{duration}' is not a duration");
        return parts.Sum(p => double.Parse(p.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture) * p.Groups[2].Value switch
        {
            "h" => 3600,
            "m" => 60,
            "s" => 1,
            "ms" => 0.001,
            "us" => 0.000001,
            _ => 0.000000001,
        });
    }

    [Fact]
    public void Dockerfiles_EveryService_IsMultiStageNonRootWithPinnedBaseImages()
    {
        foreach (var service in new[] { "Api", "Worker", "Trainer" })
        {
            var path = Path.Combine(Root, "src", $"WasteClassifier.{service}", "Dockerfile");
            Assert.True(File.Exists(path), $"{path} is missing");
            var text = File.ReadAllText(path);
            var bases = FromLine().Matches(text).Select(m => m.Groups[1].Value).ToList();
            Assert.True(bases.Count >= 2, $"{service}: not multi-stage");
            Assert.All(bases, image => Assert.True(IsPinned(image) && PatchTag().IsMatch(image), $"{service}: base image {image} is not pinned to a patch version"));
            var user = UserLine().Matches(text).LastOrDefault()?.Groups[1].Value;
            Assert.True(user is not null && user != "root" && user != "0", $"{service}: the final stage does not switch to a non-root user");
            Assert.Contains("HEALTHCHECK", text);
            // An environment-only setting the services' CPU figures depend on (README, Configuration).
            Assert.Contains("GLIBC_TUNABLES=glibc.malloc.hugetlb=1", text);
        }
    }

    [Fact]
    public void RuntimeConfig_EveryService_CapsGenerationZero()
    {
        // The build writes the cap into each executable's runtimeconfig.json, so every way of starting a service has it
        // (dotnet run, the Dockerfiles, a copied bin folder); the referenced services' files sit beside this assembly.
        foreach (var service in new[] { "WasteClassifier.Api", "WasteClassifier.Worker", "WasteClassifier.Trainer", "wastectl" })
        {
            var path = Path.Combine(AppContext.BaseDirectory, $"{service}.runtimeconfig.json");
            using var config = JsonDocument.Parse(File.ReadAllText(path));
            var properties = config.RootElement.GetProperty("runtimeOptions").GetProperty("configProperties");
            Assert.True(properties.TryGetProperty("System.GC.Gen0MaxBudget", out var budget), $"{service}: no gen 0 cap in {path}");
            Assert.Equal(ManagedHeap.Gen0MaxBudgetCapBytes, budget.GetInt64());
        }
        // And the runtime honours the property: this test process is built by the same rule (unless overridden).
        if (Environment.GetEnvironmentVariable("DOTNET_GCGen0MaxBudget") is null && Environment.GetEnvironmentVariable("COMPlus_GCGen0MaxBudget") is null)
            Assert.Equal(ManagedHeap.Gen0MaxBudgetCapBytes, ManagedHeap.Gen0MaxBudgetBytes());
    }

    [GeneratedRegex(@"(\d+(?:\.\d+)?)(h|ms|m|s|us|ns)")]
    private static partial Regex ComposeDuration();

    [GeneratedRegex(@"^FROM\s+(\S+)", RegexOptions.Multiline)]
    private static partial Regex FromLine();

    [GeneratedRegex(@":\d+\.\d+\.\d+")]
    private static partial Regex PatchTag();

    [GeneratedRegex(@"^USER\s+(\S+)", RegexOptions.Multiline)]
    private static partial Regex UserLine();
}
