using WasteClassifier.Bench;
using WasteClassifier.Components.Models;
using WasteClassifier.Core.Inference;
using WasteClassifier.LoadTesting.Images;

// bench/run.sh builds everything, starts the servers and runs this; see the README's Performance section.
var settings = BenchSettings.FromEnvironment(args);
Directory.CreateDirectory(settings.OutputDirectory);
var modelDirectory = Environment.GetEnvironmentVariable("Model__Directory") ?? Path.Combine(AppContext.BaseDirectory, "models", "default");
// Two settings of the raw model: one Run at a time over every core (a synchronous one-image server's best case at batch 1),
// and the worker's lanes, configured as the worker is (Model__InferenceLanes, Model__InferenceThreads, Model__ImagesPerRun).
var model = new ModelOptions
{
    InferenceLanes = EnvInt("Model__InferenceLanes") ?? 0,
    InferenceThreads = EnvInt("Model__InferenceThreads") ?? 0,
    ImagesPerRun = EnvInt("Model__ImagesPerRun") ?? new ModelOptions().ImagesPerRun,
};
var serving = model.ToInferenceOptions();
var sequential = model.ToSequentialInferenceOptions();
var oneRun = new ModelBench.Setting(1, sequential.IntraOpThreads);
// The same with ONNX Runtime's default of idle threads spinning between operators, as a server on cores of its own would
// run it: batch 1's reference is the faster of the two (spinning was 2.8 % faster on average, in 7 of 8 pairs).
var oneRunSpinning = oneRun with { SpinIdleThreads = true };
var workerSetting = new ModelBench.Setting(serving.ConcurrentRuns, serving.IntraOpThreads, serving.MaxImagesPerRun);
var settingsToMeasure = new[] { oneRun, oneRunSpinning, workerSetting }
    .Where(s => !s.SpinIdleThreads || s.Threads > 1) // one thread per Run has no idle threads to spin
    .Distinct().ToArray();
var dataset = ImageSet.FromFolder(settings.Dataset, 200);
var hugePages = NativeHeap.HugePagesRequested(Environment.GetEnvironmentVariable("GLIBC_TUNABLES")) ? "on" : "off";
// The build's cap, or DOTNET_GCGen0MaxBudget, which the services started by this run inherit too.
var gen0Budget = $"at most {ManagedHeap.Gen0MaxBudgetBytes() / (1024 * 1024)} MiB";
// As bench/servers-scheduling.sh applied it: when it could change nothing, the servers kept whatever policy they had.
var serversScheduling = Environment.GetEnvironmentVariable("BENCH_SERVERS_SCHED") switch
{
    "batch" => "servers on SCHED_BATCH",
    "normal" => "servers on SCHED_OTHER",
    _ => "servers' scheduling not set",
};
// "/" when bench/run.sh could not create the run's own: then other deployments on the broker may have disturbed it.
var table = new BenchTable { Setup = $", object store: {settings.ObjectStore}, model buffers on huge pages: {hugePages}, gen 0 budget: {gen0Budget}, {serversScheduling}, RabbitMQ virtual host: {settings.RabbitVirtualHost}" };

var images = dataset.All.Select(i => i.Content).ToList();
foreach (var setting in settingsToMeasure)
{
    Console.Error.WriteLine($"raw model ({modelDirectory}, {setting})");
    table.Raw.AddRange(ModelBench.Run(modelDirectory, setting, images, settings.MicroDuration, [1, 8, 16, 32]));
}
table.WorkerSetting = workerSetting;

Console.Error.WriteLine("decode + resize");
var input = ModelCard.Load(modelDirectory).Input;
table.Decode.AddRange(DecodeBench.Run("dataset", dataset.All.Take(64).Select(i => i.Content).ToList(), input, settings.MicroDuration));
var cameraFrames = ImageSet.Generated(8, 1920, 1080).All.Select(i => i.Content).ToList();
table.Decode.AddRange(DecodeBench.Run("1920x1080 JPEG", cameraFrames, input, settings.MicroDuration));
table.Decode.AddRange(DecodeBench.Run("1920x1080 JPEG, every pixel decoded", cameraFrames, input, settings.MicroDuration, scaledDecode: false));

var bench = new EndToEndBench(settings, dataset);
var logs = Path.Combine(settings.OutputDirectory, "logs");
Directory.CreateDirectory(logs);
// Raw batch 1 and 16 again between the deployments and after the last, for the ratios' medians.
void MeasureRawAgain(string when)
{
    Console.Error.WriteLine($"raw model again, {when}");
    foreach (var setting in settingsToMeasure)
        table.RawAgain.AddRange(ModelBench.Run(modelDirectory, setting, images, settings.MicroDuration, setting.Runs == 1 ? [1, 16] : [16]).Select(r => (when, r)));
}

foreach (var workers in settings.WorkerCounts)
{
    if (workers != settings.WorkerCounts[0]) MeasureRawAgain($"before the {workers}-worker phases");
    Console.Error.WriteLine($"end to end, {workers} worker(s)");
    using var deployment = await Deployment.StartAsync(settings, workers, 18_500 + workers, logs);
    var peakAtStart = deployment.Workers.Max(w => w.PeakMemoryMb() ?? 0);
    var warmup = await bench.RunAsync(deployment, $"warmup-{workers}w", settings.SaturationUsers, rate: 0, settings.WarmupDuration, TimeSpan.FromSeconds(60));
    var saturation = await bench.RunAsync(deployment, $"saturation-{workers}w", settings.SaturationUsers, 0, settings.PhaseDuration, TimeSpan.FromSeconds(120));
    if ((saturation.Report.Throughput.SteadyCompletedPerS ?? 0) <= 0)
        throw new InvalidOperationException($"the {workers}-worker saturation phase completed nothing, so there is no half load to offer; see the logs in {logs}");
    var half = await bench.RunAsync(deployment, $"half-{workers}w", 0, saturation.Report.Throughput.SteadyCompletedPerS!.Value / 2, settings.PhaseDuration, TimeSpan.FromSeconds(120));
    var flood = workers == 1
        ? await bench.RunAsync(deployment, "flood-1w", 200, 0, settings.PhaseDuration, TimeSpan.FromSeconds(180), profile: "flood")
        : null;
    table.EndToEnd.Add(new BenchTable.Deployment(workers, saturation, half, flood, deployment.Workers.Max(w => w.PeakMemoryMb() ?? 0), peakAtStart, warmup));
}

MeasureRawAgain("after the e2e phases");

var text = table.Render();
File.WriteAllText(Path.Combine(settings.OutputDirectory, "bench.md"), text);
Console.Out.Write(text);

static int? EnvInt(string name) => int.TryParse(Environment.GetEnvironmentVariable(name), out var value) && value >= 0 ? value : null;
