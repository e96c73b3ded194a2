namespace WasteClassifier.Bench;

/// <summary>Where the built services are, which servers to use and how long each phase runs; set by bench/run.sh.</summary>
public sealed record BenchSettings
{
    public required string ApiDll { get; init; }
    public required string WorkerDll { get; init; }
    public required string Dataset { get; init; }
    public required string OutputDirectory { get; init; }
    public required string PostgresConnectionString { get; init; }
    public string RabbitHost { get; init; } = "localhost";
    /// <summary>The run's own virtual host, which bench/run.sh creates (bench/rabbitmq-vhost.sh); <c>/</c> where it could not.</summary>
    public string RabbitVirtualHost { get; init; } = "/";
    public string S3Endpoint { get; init; } = "localhost:9000";
    public string S3AccessKey { get; init; } = "S3RVER";
    public string S3SecretKey { get; init; } = "S3RVER";
    /// <summary><c>minio</c> (the S3 server, as deployed) or <c>filesystem</c> (a shared folder: the control without the S3 server).</summary>
    public string ObjectStore { get; init; } = "minio";

    public TimeSpan PhaseDuration { get; init; } = TimeSpan.FromSeconds(30);
    public TimeSpan MicroDuration { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Load at saturation before anything is measured. The services' JIT needs it: their hot paths start as quick, unoptimized
    /// code and are recompiled in the background, which on 2 busy cores takes tens of seconds (a fresh API cost 28 CPU ms per
    /// image against 14 with tiered compilation off, and about 5 once warm).
    /// </summary>
    public TimeSpan WarmupDuration { get; init; } = TimeSpan.FromSeconds(45);

    /// <summary>
    /// Closed-loop users that keep the queue non-empty: a worker on 2 cores holds 64 messages (3 batches of 16 in progress
    /// and one waiting), and with 96 users the 200-user flood phase still completed 14 % more images per second.
    /// </summary>
    public int SaturationUsers { get; init; } = 192;

    /// <summary>The worker counts of the end-to-end phases, e.g. only <c>1</c> for a quicker run while profiling.</summary>
    public IReadOnlyList<int> WorkerCounts { get; init; } = [1, 2];

    public static BenchSettings FromEnvironment(string[] args)
    {
        string Get(string name, string? fallback = null) =>
            Environment.GetEnvironmentVariable(name) ?? fallback ?? throw new ArgumentException($"{name} is not set (bench/run.sh sets it)");
        return new BenchSettings
        {
            ApiDll = Get("BENCH_API_DLL"),
            WorkerDll = Get("BENCH_WORKER_DLL"),
            Dataset = Get("BENCH_DATASET"),
            OutputDirectory = Get("BENCH_OUT", args.FirstOrDefault() ?? "bench-results"),
            PostgresConnectionString = Get("WASTE_TEST_POSTGRES"),
            RabbitHost = Get("WASTE_TEST_RABBITMQ_HOST", "localhost"),
            RabbitVirtualHost = Get("Messaging__RabbitMq__VirtualHost", "/"),
            S3Endpoint = Get("WASTE_TEST_S3_ENDPOINT", "localhost:9000"),
            S3AccessKey = Get("WASTE_TEST_S3_ACCESS_KEY", "S3RVER"),
            S3SecretKey = Get("WASTE_TEST_S3_SECRET_KEY", "S3RVER"),
            ObjectStore = Get("BENCH_OBJECT_STORE", "minio"),
            PhaseDuration = TimeSpan.FromSeconds(double.Parse(Get("BENCH_SECONDS", "30"), System.Globalization.CultureInfo.InvariantCulture)),
            MicroDuration = TimeSpan.FromSeconds(double.Parse(Get("BENCH_MICRO_SECONDS", "5"), System.Globalization.CultureInfo.InvariantCulture)),
            WarmupDuration = TimeSpan.FromSeconds(double.Parse(Get("BENCH_WARMUP_SECONDS", "45"), System.Globalization.CultureInfo.InvariantCulture)),
            SaturationUsers = int.Parse(Get("BENCH_SATURATION_USERS", "192"), System.Globalization.CultureInfo.InvariantCulture),
            WorkerCounts = Get("BENCH_WORKERS", "1,2").Split(',').Select(w => int.Parse(w, System.Globalization.CultureInfo.InvariantCulture)).ToList(),
        };
    }
}
