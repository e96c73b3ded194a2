using System.Diagnostics;
using System.Security.Cryptography;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats.Gif;
using SixLabors.ImageSharp.Formats.Jpeg;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.Formats.Webp;
using SixLabors.ImageSharp.Metadata.Profiles.Exif;
using SixLabors.ImageSharp.PixelFormats;
using SixLabors.ImageSharp.Processing;
using WasteClassifier.Core.Imaging;
using WasteClassifier.Core.Inference;
using WasteClassifier.UnitTests.Support;
using Xunit.Abstractions;

namespace WasteClassifier.UnitTests.Imaging;

/// <summary>
/// A seeded mutation fuzzer over the decoding entry point (<see cref="ImageTensorWriter.Inspect"/> then
/// <see cref="ImageTensorWriter.Write"/>): for a bounded time it mutates small valid images of every format and asserts
/// that each input is answered (accepted or refused) without an exception and within a time limit. An input that breaks
/// that is written to Imaging/FuzzRegressions/ and replayed by <see cref="Regression_SavedInput_AnsweredWithoutException"/>.
/// Time: FUZZ_SECONDS (default 25 on CI, 3 elsewhere); seed: FUZZ_SEED (default: a new one, printed).
/// </summary>
public sealed class ImageDecoderFuzzTests(ITestOutputHelper output)
{
    private static readonly ModelInputSpec Input = new() { Width = 32, Height = 32 };
    private static readonly ImageLimits Limits = new() { MaxPixels = 4_000_000, MaxSide = 4096 };
    // A hang, not a slow input: decoding one takes milliseconds, but the test machine (2 shared cores, both test projects
    // at once) has stalled a process for most of a minute.
    private static readonly TimeSpan PerInputLimit = TimeSpan.FromSeconds(90);

    public static string RegressionDirectory => Path.Combine(TestPaths.RepositoryRoot, "tests", "WasteClassifier.UnitTests", "Imaging", "FuzzRegressions");

    public static TheoryData<string> Regressions => new(Directory.Exists(RegressionDirectory)
        ? Directory.GetFiles(RegressionDirectory, "*.bin").Select(Path.GetFileName).OfType<string>().DefaultIfEmpty("none")
        : ["none"]);

    [Fact]
    public void Fuzz_MutatedImages_EveryInputAnsweredWithoutException()
    {
        var ci = string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase);
        var seconds = double.TryParse(Environment.GetEnvironmentVariable("FUZZ_SECONDS"), out var s) ? s : ci ? 25 : 3;
        var seed = int.TryParse(Environment.GetEnvironmentVariable("FUZZ_SEED"), out var given) ? given : RandomNumberGenerator.GetInt32(int.MaxValue);
        output.WriteLine($"fuzzing for {seconds} s with FUZZ_SEED={seed}");
        var random = new Random(seed);
        var seeds = Seeds();
        var clock = Stopwatch.StartNew();
        var (inputs, accepted) = (0, 0);
        var failures = new List<string>();
        while (clock.Elapsed.TotalSeconds < seconds && failures.Count == 0)
        {
            var input = Mutate(seeds[random.Next(seeds.Count)], random);
            inputs++;
            var failure = Run(input, out var ok);
            if (ok) accepted++;
            if (failure is not null) failures.Add($"{Save(input)}: {failure}");
        }
        output.WriteLine($"{inputs} inputs, {accepted} decoded, {failures.Count} failures");
        Assert.True(failures.Count == 0, $"seed {seed}: " + string.Join("\n", failures));
        Assert.True(inputs > 0);
    }

    [Theory]
    [MemberData(nameof(Regressions))]
    public void Regression_SavedInput_AnsweredWithoutException(string file)
    {
        if (file == "none") return;
        Assert.Null(Run(File.ReadAllBytes(Path.Combine(RegressionDirectory, file)), out _));
    }

    /// <summary>Null when the input was answered properly; otherwise what went wrong.</summary>
    private static string? Run(byte[] input, out bool decoded)
    {
        var ok = false;
        var work = Task.Run(() =>
        {
            var check = ImageTensorWriter.Inspect(input, Limits);
            if (!check.Ok) return check;
            var result = ImageTensorWriter.Write(input, Input, new float[ImageTensorWriter.TensorLength(Input)], Limits);
            ok = result.Ok;
            return result;
        });
        try
        {
            if (!work.Wait(PerInputLimit)) { decoded = false; return $"not answered within {PerInputLimit.TotalSeconds} s"; }
            var check = work.Result;
            decoded = ok;
            return check.Ok || !string.IsNullOrWhiteSpace(check.Error) && !string.IsNullOrWhiteSpace(check.Message) ? null : "refused without a reason";
        }
        catch (AggregateException e)
        {
            decoded = false;
            return e.InnerException?.ToString() ?? e.ToString();
        }
    }

    private static string Save(byte[] input)
    {
        Directory.CreateDirectory(RegressionDirectory);
        var path = Path.Combine(RegressionDirectory, $"crash-{Convert.ToHexStringLower(SHA256.HashData(input))[..16]}.bin");
        File.WriteAllBytes(path, input);
        return path;
    }

    private static List<byte[]> Seeds()
    {
        using var rgb = new Image<Rgb24>(48, 40);
        for (var y = 0; y < rgb.Height; y++)
            for (var x = 0; x < rgb.Width; x++) rgb[x, y] = new Rgb24((byte)(x * 5), (byte)(y * 6), (byte)(x ^ y));
        byte[] Encode(Action<Stream> save)
        {
            using var stream = new MemoryStream();
            save(stream);
            return stream.ToArray();
        }
        using var gray = rgb.CloneAs<L8>();
        using var deep = rgb.CloneAs<Rgba64>();
        using var animated = rgb.CloneAs<Rgba32>();
        animated.Frames.AddFrame(animated.Frames.RootFrame);
        // At least twice the input on both sides: decoded at a reduced scale by libjpeg-turbo (ScaledJpegDecoder).
        using var large = rgb.Clone(x => x.Resize(96, 80));
        using var turned = large.Clone();
        turned.Metadata.ExifProfile = new ExifProfile();
        turned.Metadata.ExifProfile.SetValue(ExifTag.Orientation, (ushort)6);
        return
        [
            Encode(s => rgb.SaveAsJpeg(s, new JpegEncoder { Quality = 80 })),
            Encode(s => rgb.SaveAsJpeg(s, new JpegEncoder { ColorType = JpegColorType.YCbCrRatio420 })),
            Encode(s => gray.SaveAsJpeg(s, new JpegEncoder { ColorType = JpegColorType.Luminance })),
            Encode(s => large.SaveAsJpeg(s, new JpegEncoder { ColorType = JpegColorType.YCbCrRatio420 })),
            Encode(s => turned.SaveAsJpeg(s, new JpegEncoder { Quality = 80 })),
            Encode(s => rgb.SaveAsPng(s)),
            Encode(s => deep.SaveAsPng(s, new PngEncoder { BitDepth = PngBitDepth.Bit16 })),
            Encode(s => animated.SaveAsGif(s, new GifEncoder())),
            Encode(s => rgb.SaveAsBmp(s)),
            Encode(s => rgb.SaveAsWebp(s, new WebpEncoder { FileFormat = WebpFileFormatType.Lossy })),
            Encode(s => rgb.SaveAsWebp(s, new WebpEncoder { FileFormat = WebpFileFormatType.Lossless })),
            Encode(s => rgb.SaveAsTiff(s)),
            Encode(s => rgb.SaveAsTga(s)),
            HostileImages.PngHeaderOnly(30000, 30000),
        ];
    }

    /// <summary>One to four mutations: bit flips, interesting bytes, big header integers, cuts, repeats and splices.</summary>
    private static byte[] Mutate(byte[] seed, Random random)
    {
        var data = new List<byte>(seed);
        byte[] interesting = [0x00, 0xFF, 0x7F, 0x80, 0x01, 0xFE];
        for (int m = 0, count = random.Next(1, 5); m < count && data.Count > 1; m++)
        {
            var at = random.Next(data.Count);
            switch (random.Next(7))
            {
                case 0: data[at] ^= (byte)(1 << random.Next(8)); break;
                case 1: data[at] = interesting[random.Next(interesting.Length)]; break;
                case 2: // a header-sized integer set to something large (sizes, lengths, counts)
                    for (var k = 0; k < 4 && at + k < data.Count; k++) data[at + k] = (byte)random.Next(0x70, 0x100);
                    break;
                case 3: data.RemoveRange(at, Math.Min(data.Count - at, random.Next(1, 64))); break;
                case 4: data.RemoveRange(at, data.Count - at); break; // truncate
                case 5: // repeat a block (duplicated chunks, markers, frames)
                    var length = Math.Min(data.Count - at, random.Next(1, 256));
                    data.InsertRange(random.Next(data.Count), data.GetRange(at, length));
                    break;
                default: data.Insert(at, (byte)random.Next(256)); break;
            }
        }
        return data.ToArray();
    }
}
