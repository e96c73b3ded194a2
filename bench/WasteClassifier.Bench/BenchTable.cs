using System.Globalization;
using System.Text;
using WasteClassifier.LoadTesting.Reporting;

namespace WasteClassifier.Bench;

/// <summary>Collects the figures of one benchmark run and prints them as a Markdown table with the ratios and targets.</summary>
public sealed class BenchTable
{
    public sealed record Deployment(int Workers, EndToEndBench.Phase Saturation, EndToEndBench.Phase Half, EndToEndBench.Phase? Flood, double WorkerPeakMb, double WorkerPeakAtStartMb, EndToEndBench.Phase Warmup);

    public List<ModelBench.Result> Raw { get; } = [];

    /// <summary>
    /// The raw model's batch 1 and 16 measured again between the deployments and after the last: how much the machine's
    /// load drifted during the run. <c>When</c> says where in the run.
    /// </summary>
    public List<(string When, ModelBench.Result Result)> RawAgain { get; } = [];

    private IEnumerable<ModelBench.Result> AllRaw => Raw.Concat(RawAgain.Select(r => r.Result));

    /// <summary>How the worker runs the model (its lanes); the other raw setting is one Run at a time over every core.</summary>
    public ModelBench.Setting? WorkerSetting { get; set; }

    public string Setup { get; set; } = "";
    public List<DecodeBench.Result> Decode { get; } = [];
    public List<Deployment> EndToEnd { get; } = [];

    public string Render()
    {
        var md = new StringBuilder($"## Benchmark ({Environment.ProcessorCount} cores, {DateTime.UtcNow:u}{Setup})\n\n| Measure | Images/s | Latency (ms) | Notes |\n|---|---:|---:|---|\n");
        foreach (var r in Raw) md.Append($"| raw model, batch {r.BatchSize}, {r.Setting}{Role(r.Setting)} | {F(r.ImagesPerS)} | {F(r.MsPerBatch)} per batch | preprocessed tensors; {F(r.CpuMsPerImage)} CPU ms per image |\n");
        foreach (var (when, r) in RawAgain) md.Append($"| raw model, batch {r.BatchSize}, {r.Setting}, {when} | {F(r.ImagesPerS)} | {F(r.MsPerBatch)} per batch | same model, same run; {F(r.CpuMsPerImage)} CPU ms per image |\n");
        foreach (var d in Decode) md.Append($"| decode + resize, {d.Images}, {d.Threads} thread(s) | {F(d.ImagesPerS)} | {F(d.MsPerImage)} per image | |\n");
        foreach (var e in EndToEnd)
        {
            foreach (var (label, phase) in new[] { ("warm-up (fresh processes, not in the ratios)", e.Warmup), ("saturation", e.Saturation), ("half saturation", e.Half) })
            {
                var r = phase.Report;
                md.Append($"| e2e, {e.Workers} worker(s), {label} | {F(r.Throughput.SteadyCompletedPerS)} | p50 {F(r.LatencyMs.EndToEnd.P50)}, p95 {F(r.LatencyMs.EndToEnd.P95)} | " +
                          $"{(r.Run.Users > 0 ? $"{r.Run.Users} users" : $"{F(r.Run.RatePerS)}/s offered")}, {r.Counts.Failed} failed, mean batch {F(phase.MeanBatchSize)}; " +
                          $"CPU: API {P(phase.ApiCpuShare)}, workers {P(phase.WorkerCpuShare)} of one core |\n");
            }
            if (e.Flood is { } flood)
                md.Append($"| flood (200 users), {e.Workers} worker(s) | {F(flood.Report.Throughput.SteadyCompletedPerS)} | p50 {F(flood.Report.LatencyMs.EndToEnd.P50)}, p95 {F(flood.Report.LatencyMs.EndToEnd.P95)} | " +
                          $"{flood.Report.Counts.Completed} completed, **{flood.Report.Counts.Failed} failed** {Reasons(flood.Report)}, {flood.Report.Counts.Throttled} throttled (retried) |\n");
            md.Append($"| worker peak memory (VmHWM), {e.Workers} worker(s) | | | {F(e.WorkerPeakMb)} MB ({F(e.WorkerPeakAtStartMb)} MB once started, before any load) |\n");
        }

        md.Append($"\nWhere the machine's CPU went in each phase (share of all {Environment.ProcessorCount} cores, whole phase including the drain):\n\n| Phase | " +
                  string.Join(" | ", CpuUsage.Groups) + " | idle |\n|---|" + string.Concat(Enumerable.Repeat("---:|", CpuUsage.Groups.Length + 1)) + "\n");
        foreach (var e in EndToEnd)
            foreach (var phase in new[] { e.Saturation, e.Half, e.Flood }.OfType<EndToEndBench.Phase>())
                md.Append($"| {phase.Name} | " + string.Join(" | ", CpuUsage.Groups.Select(g => P(phase.MachineCpu.GetValueOrDefault(g)))) +
                          $" | {P(Math.Max(0, 1 - phase.MachineCpu.Values.Sum()))} |\n");

        // Ratios use the median of the raw figures measured before, between and after the end-to-end phases: the machine is
        // shared, and one disturbed measurement (too slow, which flatters the ratios) then does not move them.
        // Batch 16's ceiling is the best of the settings; batch 1's reference is one Run at a time over every core, as a
        // synchronous one-image server runs it (and the lower latency), with idle threads asleep or spinning, whichever was faster.
        double Median(ModelBench.Setting setting, int size) =>
            MedianOf(AllRaw.Where(r => r.BatchSize == size && r.Setting == setting).Select(r => r.ImagesPerS).ToList());
        double Finite(double value) => double.IsFinite(value) ? value : 0;
        var settings = Raw.Select(r => r.Setting).Distinct().ToList();
        var oneRun = settings.Where(s => s.Runs == 1).MaxBy(s => Finite(Median(s, 1))) ?? new ModelBench.Setting(1, Environment.ProcessorCount);
        var better16 = settings.MaxBy(s => Finite(Median(s, 16))) ?? oneRun;
        double B(int size) => size == 1 ? Median(oneRun, 1) : Median(better16, size);
        // The ratio against each raw figure on its own: how far the noise of this run reaches.
        string Spread(ModelBench.Setting setting, int size, double e2e)
        {
            var ratios = AllRaw.Where(r => r.BatchSize == size && r.Setting == setting).Select(r => e2e / r.ImagesPerS).ToList();
            return ratios.Count < 2 ? "" : $"{R(ratios.Min())}–{R(ratios.Max())}";
        }
        var one = EndToEnd.FirstOrDefault(e => e.Workers == 1);
        var two = EndToEnd.FirstOrDefault(e => e.Workers == 2);
        var e2e1 = one?.Saturation.Report.Throughput.SteadyCompletedPerS ?? double.NaN;
        var e2e2 = two?.Saturation.Report.Throughput.SteadyCompletedPerS ?? double.NaN;
        var b1Ms = 1000 / B(1);
        var p95Half = one?.Half.Report.LatencyMs.EndToEnd.P95 ?? double.NaN;
        var floodFailed = one?.Flood?.Report.Counts.Failed ?? -1;
        var peak = EndToEnd.Select(e => e.WorkerPeakMb).DefaultIfEmpty(double.NaN).Max();
        md.Append("\n| Ratio / target | Value | Against each raw figure | Target | Met |\n|---|---:|---:|---:|---|\n");
        md.Append($"| e2e (1 worker) ÷ raw batch 16 ({better16}, the best setting) | {R(e2e1 / B(16))} | {Spread(better16, 16, e2e1)} | ≥ 0.8 | {Met(e2e1 / B(16) >= 0.8)} |\n");
        md.Append($"| e2e (1 worker) ÷ raw batch 1 ({oneRun}, the faster one-Run setting) | {R(e2e1 / B(1))} | {Spread(oneRun, 1, e2e1)} | > 1 | {Met(e2e1 > B(1))} |\n");
        md.Append($"| 2 workers ÷ 1 worker | {F(e2e2 / e2e1)} | | (2 cores shared) | |\n");
        md.Append($"| p95 at half saturation ÷ raw batch-1 time ({F(b1Ms)} ms) | {F(p95Half / b1Ms)} | | < 4 | {Met(p95Half < 4 * b1Ms)} |\n");
        md.Append($"| flood failed requests | {floodFailed} | | 0 | {Met(floodFailed == 0)} |\n");
        md.Append($"| worker peak memory (MB) | {F(peak)} | | < 500 | {Met(peak < 500)} |\n");
        // What decoding large JPEGs at a reduced scale saves on camera frames (one thread each, same run).
        double CameraMs(bool scaled) => Decode.FirstOrDefault(d => d.Threads == 1 && d.Images.StartsWith("1920x1080") && d.Images.Contains("every pixel") != scaled)?.MsPerImage ?? double.NaN;
        md.Append($"| camera frame decode + resize, every pixel ÷ scaled | {F(CameraMs(false) / CameraMs(true))} | | | |\n");
        if (one is not null) AppendCpuBudget(md, one.Saturation, B(16), B(1), oneRun, settings);
        return md.ToString();
    }

    /// <summary>
    /// The throughput targets as CPU budgets: on fully busy cores, e2e images/s is the cores' milliseconds over what the
    /// whole machine spends per image, and the model alone costs what the raw run measured. So the ratios follow from
    /// how much the API, the servers and the worker's own work add to the model, set against what batching saves.
    /// </summary>
    private void AppendCpuBudget(StringBuilder md, EndToEndBench.Phase saturation, double rawBatch16, double rawBatch1, ModelBench.Setting batch1Setting,
        IReadOnlyList<ModelBench.Setting> settings)
    {
        // The lowest of the figures before, between and after the e2e phases: a disturbance on the shared machine only adds
        // to them (one run measured 41.4 before and 52.1 after).
        double ModelMs(int size, Func<ModelBench.Setting, bool> setting) =>
            AllRaw.Where(r => r.BatchSize == size && setting(r.Setting)).Select(r => r.CpuMsPerImage).DefaultIfEmpty(double.NaN).Min();
        // The model's cost as the worker runs it (its lanes), else the first setting measured.
        var served = WorkerSetting ?? settings[0];
        var model16 = ModelMs(16, s => s == served);
        // The same setting as batch 1's reference, whose images/s the batch-1 target uses.
        var model1 = ModelMs(1, s => s == batch1Setting);
        var cores = Environment.ProcessorCount * 1000.0;
        var spent = CpuUsage.Groups.Sum(saturation.CpuMsPerImage);
        md.Append($"\nThe throughput targets as CPU budgets ({saturation.Name}: each group's share of the {Environment.ProcessorCount} cores over its steady throughput, in CPU ms per image):\n\n" +
                  "| Spent by | CPU ms per image |\n|---|---:|\n");
        foreach (var group in CpuUsage.Groups) md.Append($"| {group} | {F(saturation.CpuMsPerImage(group))} |\n");
        md.Append($"| **whole machine** | **{F(spent)}** |\n");
        md.Append($"| the model alone, raw batch 16 ({served}), same run | {F(model16)} |\n");
        md.Append($"| the model alone, raw batch 1 ({batch1Setting}), same run | {F(model1)} |\n");
        if (saturation.WorkerModel is { Images: > 0 } inside)
            md.Append($"| the model inside the worker(s), CPU of its calls (their /metrics) | {F(inside.CpuMsPerImage)} |\n");
        md.Append($"\nBeyond the model the machine spent {F(spent - model16)} ms per image. " +
                  $"e2e ≥ 0.8 × raw batch 16 allows at most {F(cores / (0.8 * rawBatch16))} ms per image in all, {F(cores / (0.8 * rawBatch16) - model16)} beyond the model; " +
                  $"e2e > raw batch 1 allows less than {F(cores / rawBatch1)} ms, {F(cores / rawBatch1 - model16)} beyond the model " +
                  $"(batching saves {F(model1 - model16)} ms per image of the model's own CPU).\n");
        // Contention between the model and everything beside it shows here: as CPU above the raw figure (caches, memory
        // bandwidth), or as waiting for a core, which costs latency but no throughput on busy cores.
        if (saturation.WorkerModel is { Images: > 0 } model)
            md.Append($"Inside the worker(s) the model's calls cost {F(model.CpuMsPerImage)} CPU ms per image, {F(model.CpuMsPerImage / model16)} × its raw batch-16 figure above (the lowest of the run's); " +
                      $"they took {F(model.WallMsPerImage)} ms of wall time per image, {P(model.WaitingShare)} of it waiting for a core.\n");
    }

    /// <summary>The middle value, or the mean of the middle two; NaN for none.</summary>
    public static double MedianOf(IReadOnlyList<double> values)
    {
        if (values.Count == 0) return double.NaN;
        var sorted = values.Order().ToList();
        var middle = sorted.Count / 2;
        return sorted.Count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
    }

    private static string Reasons(LoadReport report) =>
        report.Counts.FailuresByReason.Count == 0 ? "" : "(" + string.Join(", ", report.Counts.FailuresByReason.Select(r => $"{r.Key}: {r.Value}")) + ")";

    private string Role(ModelBench.Setting setting) => setting == WorkerSetting ? " (the worker's setting)" : "";

    private static string Met(bool met) => met ? "yes" : "**no**";

    private static string F(double? value) => MarkdownReport.F(value is { } v && double.IsFinite(v) ? v : null);

    /// <summary>
    /// A throughput ratio, to three decimals: they fall within a few per cent of their targets, where two decimals (0.797
    /// as "0.8", 1.003 as "1") do not say which side of it a run is.
    /// </summary>
    private static string R(double value) => double.IsFinite(value) ? value.ToString("F3", CultureInfo.InvariantCulture) : "–";

    private static string P(double share) => $"{share * 100:F0} %";
}
