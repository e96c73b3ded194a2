using WasteClassifier.Bench;
using WasteClassifier.LoadTesting;
using WasteClassifier.LoadTesting.Reporting;

namespace WasteClassifier.UnitTests.Bench;

public sealed class BenchTableTests
{
    private static readonly ModelBench.Setting OneRun = new(1, 2);

    [Theory]
    // 2026-12-01 03:05: e2e > raw batch 1 by 0.3 %, printed "1"; 2026-11-30 21:49: 0.797 of raw batch 16, printed "0.8".
    [InlineData(67.82, 67.64, 80.99, "| 1.003 |", "| 0.837 |")]
    [InlineData(66.04, 65.84, 82.86, "| 1.003 |", "| 0.797 |")]
    public void Render_ThroughputRatiosNearTheirTargets_PrintThreeDecimals(double e2e, double rawBatch1, double rawBatch16, string batch1Ratio, string batch16Ratio)
    {
        var table = new BenchTable();
        table.Raw.Add(new ModelBench.Result(OneRun, 1, rawBatch1, 1000 / rawBatch1, 30));
        table.Raw.Add(new ModelBench.Result(OneRun, 16, rawBatch16, 16_000 / rawBatch16, 24));
        var saturation = Phase("saturation-1w", e2e);
        table.EndToEnd.Add(new BenchTable.Deployment(1, saturation, Phase("half-1w", e2e / 2), null, 430, 300, Phase("warmup-1w", e2e)));

        var rows = table.Render().Split('\n');

        Assert.Contains(batch1Ratio, rows.Single(r => r.StartsWith("| e2e (1 worker) ÷ raw batch 1 (", StringComparison.Ordinal)));
        Assert.Contains(batch16Ratio, rows.Single(r => r.StartsWith("| e2e (1 worker) ÷ raw batch 16 (", StringComparison.Ordinal)));
    }

    private static EndToEndBench.Phase Phase(string name, double steadyPerS)
    {
        var options = new LoadTestOptions { Target = new Uri("http://127.0.0.1:1/"), Users = 1, Duration = TimeSpan.FromSeconds(30) };
        var report = LoadReport.From(new LoadRunResult(options, "fake", DateTimeOffset.UnixEpoch, TimeSpan.FromSeconds(30), []));
        return new EndToEndBench.Phase(name, report with { Throughput = new ThroughputFigures(steadyPerS, steadyPerS, steadyPerS) }, 0.5, 1, new Dictionary<string, double>(), 16, null);
    }
}
