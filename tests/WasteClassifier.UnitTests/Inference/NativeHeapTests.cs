using System.Diagnostics;
using System.Runtime.InteropServices;
using WasteClassifier.Core.Inference;

namespace WasteClassifier.UnitTests.Inference;

/// <summary>
/// Once a model is loaded, glibc gives every large block its own mapping, so ONNX Runtime's per-run buffers go back to the
/// OS when freed instead of staying in the malloc arenas (most of the worker's memory peak before).
/// </summary>
public sealed class NativeHeapTests
{
    [SkippableFact]
    public void Load_ThenLargeBlockAfterALargerOneWasFreed_IsMappedOnItsOwn()
    {
        Skip.IfNot(OperatingSystem.IsLinux() && NativeLibrary.TryLoad("libc.so.6", out _), "glibc only");
        // In a process of its own (WasteClassifier.NativeHeapProbe): this one's malloc arenas hold whatever earlier tests
        // freed, and once they hold more than about 23 MB the two behaviours can no longer be told apart.
        var (exitCode, output) = RunProbe();
        Assert.True(exitCode == 0, $"probe exited {exitCode}: {output}");
    }

    [Theory]
    [InlineData("glibc.malloc.hugetlb=1", true)]
    [InlineData("glibc.malloc.trim_threshold=131072:glibc.malloc.hugetlb=1", true)]
    [InlineData("glibc.malloc.hugetlb=2", false)] // reserved hugetlbfs pages: a different setting, rarely available
    [InlineData("glibc.malloc.hugetlb=0", false)]
    [InlineData("glibc.malloc.hugetlb=1:glibc.malloc.hugetlb=0", false)]
    [InlineData("glibc.malloc.hugetlb=0:glibc.malloc.hugetlb=1", true)]
    [InlineData("glibc.malloc.hugetlb=10", false)]
    [InlineData("", false)]
    [InlineData(null, false)]
    public void HugePagesRequested_ReadsTheTunableAmongOthers(string? tunables, bool expected) =>
        Assert.Equal(expected, NativeHeap.HugePagesRequested(tunables));

    [Theory]
    [InlineData("always [madvise] never\n", "madvise")]
    [InlineData("[always] madvise never\n", "always")]
    [InlineData("always madvise [never]\n", "never")]
    [InlineData("garbled\n", null)]
    public void TransparentHugePagesMode_IsTheBracketedWord(string content, string? expected)
    {
        var path = Path.GetTempFileName();
        try
        {
            File.WriteAllText(path, content);
            Assert.Equal(expected, NativeHeap.TransparentHugePagesMode(path));
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void TransparentHugePagesMode_WithoutTheFile_IsUnknown() =>
        Assert.Null(NativeHeap.TransparentHugePagesMode(Path.Combine(Path.GetTempPath(), Guid.NewGuid().ToString("N"), "enabled")));

    private static (int ExitCode, string Output) RunProbe()
    {
        var probe = Path.Combine(AppContext.BaseDirectory, "WasteClassifier.NativeHeapProbe.dll");
        // The dotnet CLI names its own executable to the processes it starts, dotnet test's host among them.
        var host = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } path ? path : "dotnet";
        var start = new ProcessStartInfo(host, [probe]) { RedirectStandardOutput = true, RedirectStandardError = true };
        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var errors = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromMinutes(1)))
        {
            process.Kill(entireProcessTree: true);
            return (-1, "no exit within a minute");
        }
        return (process.ExitCode, (output.Result + errors.Result).Trim());
    }
}
