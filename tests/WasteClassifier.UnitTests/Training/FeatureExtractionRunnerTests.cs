using SixLabors.ImageSharp.PixelFormats;
using WasteClassifier.Core.Inference;
using WasteClassifier.Core.Training;
using WasteClassifier.Testing;
using WasteClassifier.UnitTests.Support;

namespace WasteClassifier.UnitTests.Training;

public sealed class FeatureExtractionRunnerTests : IDisposable
{
    private readonly string cacheDirectory = Directory.CreateTempSubdirectory("feature-runner-test").FullName;

    [Fact]
    public void Run_AnImageThatWillNotDecode_IsLeftOutAndNamedWhileTheOthersGetFeatures()
    {
        // A PNG whose header passes the upload's check but which has no pixel data: what a half-written labelled upload is.
        var unreadable = LabelledImage.From("uploads/broken.png", 1, HostileImages.PngHeaderOnly(64, 64));
        var good = Enumerable.Range(0, 3)
            .Select(i => LabelledImage.From($"uploads/good-{i}.png", i % 2, TestImages.SplitPng(64, 48, new Rgb24((byte)(40 * i), 90, 200), new Rgb24(10, (byte)(60 * i), 30))))
            .ToList();
        var backbone = BackboneDefinition.ResNet18;
        using var extractor = FeatureExtractor.Create(backbone);
        var runner = new FeatureExtractionRunner(extractor, new FeatureCache(cacheDirectory, backbone.Id, backbone.FeatureWidth), _ => { });

        var samples = runner.Run([good[0], unreadable, good[1], good[2]], FeatureView.ForAugmentation("flip"));

        Assert.Equal(good.Select(g => g.Path), samples.Select(s => s.Path));
        Assert.All(samples, s => Assert.Equal(2, s.Views.Count));
        var left = Assert.Single(runner.Unreadable);
        Assert.Equal("uploads/broken.png", left.Path);
        Assert.StartsWith("corrupt_image: ", left.Reason);
        Assert.DoesNotContain('\n', left.Reason);
        // Each good image's features are its own, not a neighbour's moved into the gap the broken one left.
        using var alone = FeatureExtractor.Create(backbone);
        var reference = new FeatureExtractionRunner(alone, new FeatureCache(Path.Combine(cacheDirectory, "reference"), backbone.Id, backbone.FeatureWidth), _ => { })
            .Run([good[2]], [FeatureView.Original]);
        Assert.Equal(reference[0].Original, samples[2].Original, (a, b) => Math.Abs(a - b) < 1e-4f);
    }

    [Fact]
    public void Run_BytesOfNoImageFormat_AreLeftOutWithOneLineNamingNotAnImage()
    {
        // ImageSharp's text for these lists every decoder over several lines; data_counts.unreadable showed it as it was.
        var text = LabelledImage.From("uploads/notes.jpg", 0, "not an image at all, just some text"u8.ToArray());
        var backbone = BackboneDefinition.ResNet18;
        using var extractor = FeatureExtractor.Create(backbone);
        var runner = new FeatureExtractionRunner(extractor, new FeatureCache(cacheDirectory, backbone.Id, backbone.FeatureWidth), _ => { });

        Assert.Empty(runner.Run([text], [FeatureView.Original]));

        var left = Assert.Single(runner.Unreadable);
        Assert.StartsWith("not_an_image: the bytes are not an image in a supported format", left.Reason);
        Assert.DoesNotContain('\n', left.Reason);
    }

    [Fact]
    public void Run_TruncatedJpeg_LeftOutAsTruncatedEvenWithItsFeaturesCached()
    {
        // Half a dataset photo decodes as far as its data goes: it was trained on (a partial, grey image under its label)
        // while evaluate and uploads refuse it; a sample stored before the rule may have its features cached already.
        var photo = File.ReadAllBytes(Directory.EnumerateFiles(Path.Combine(TestPaths.Dataset, "glass"), "*.jpg").Order().First());
        var cut = LabelledImage.From("uploads/cut.jpg", 0, photo[..(photo.Length / 2)]);
        var cached = LabelledImage.From("uploads/cut-before.jpg", 1, photo[..(photo.Length / 3)]);
        var good = LabelledImage.From("uploads/good.jpg", 1, photo);
        var backbone = BackboneDefinition.ResNet18;
        using var extractor = FeatureExtractor.Create(backbone);
        var cache = new FeatureCache(cacheDirectory, backbone.Id, backbone.FeatureWidth);
        cache.Add(FeatureView.Original.Name, [(cached.Sha256, new float[backbone.FeatureWidth])]);
        var runner = new FeatureExtractionRunner(extractor, cache, _ => { });

        var samples = runner.Run([cut, cached, good], [FeatureView.Original]);

        Assert.Equal("uploads/good.jpg", Assert.Single(samples).Path);
        Assert.Equal(["uploads/cut-before.jpg", "uploads/cut.jpg"], runner.Unreadable.Select(u => u.Path));
        Assert.All(runner.Unreadable, u => Assert.StartsWith("truncated_image: the file ends before the image's end", u.Reason));
    }

    public void Dispose() => Directory.Delete(cacheDirectory, recursive: true);
}
