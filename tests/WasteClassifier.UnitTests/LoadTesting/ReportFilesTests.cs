using System.Text.Json;
using WasteClassifier.LoadTesting;
using WasteClassifier.LoadTesting.Images;
using WasteClassifier.LoadTesting.Reporting;

namespace WasteClassifier.UnitTests.LoadTesting;

public sealed class ReportFilesTests
{
    [Fact]
    public async Task Write_AfterARun_JsonMarkdownAndSelfContainedHtml()
    {
        var options = new LoadTestOptions
        {
            Target = new Uri("http://localhost:1/"),
            Users = 2,
            MaxRequests = 10,
            Profile = "light",
            PollInterval = TimeSpan.FromMilliseconds(5),
        };
        var result = await new LoadRunner(new FakeLoadTarget { FailEvery = 5 }, new ImageSet([new TestImage("a.jpg", [0xFF, 0xD8, 0xFF, 0xD9, 0], "image/jpeg")]), options).RunAsync();
        var folder = Path.Combine(Path.GetTempPath(), "wc-report-" + Guid.NewGuid().ToString("N"));

        var files = ReportFiles.Write(LoadReport.From(result), folder);

        try
        {
            Assert.All(files, f => Assert.True(new FileInfo(f).Length > 100, f));
            using var json = JsonDocument.Parse(File.ReadAllText(files[0]));
            var counts = json.RootElement.GetProperty("counts");
            Assert.Equal(10, counts.GetProperty("submitted").GetInt32());
            Assert.Equal(2, counts.GetProperty("failures_by_reason").GetProperty("boom").GetInt32());
            Assert.True(json.RootElement.GetProperty("latency_ms").GetProperty("end_to_end").TryGetProperty("p95", out _));
            var markdown = File.ReadAllText(files[1]);
            Assert.Contains(MarkdownReport.LocustHeader, markdown);
            Assert.Contains("| 2 (light) |", markdown);
            var html = File.ReadAllText(files[2]);
            Assert.Equal(3, html.Split("<svg").Length - 1);
            Assert.DoesNotContain("<script", html);
            Assert.DoesNotContain("https://", html);
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }
}
