using SixLabors.ImageSharp;
using WasteClassifier.LoadTesting.Images;

namespace WasteClassifier.UnitTests.LoadTesting;

/// <summary>The images a load test sends: a folder's JPEGs and PNGs spread evenly over it, or generated JPEGs.</summary>
public sealed class ImageSetTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("wasteclassifier-imageset").FullName;

    [Fact]
    public void FromFolder_MoreFilesThanTheLimit_PicksEvenlyFromEverySubfolder()
    {
        // Ten JPEGs and PNGs in two class folders, and files that are not images.
        for (var i = 0; i < 5; i++)
        {
            Write($"glass/g{i}.jpg");
            Write($"metal/m{i}.PNG");
        }
        Write("SOURCES.md");
        Write("metal/notes.txt");

        var images = ImageSet.FromFolder(_folder, limit: 4).All;

        Assert.Equal(["g0.jpg", "g2.jpg", "m0.PNG", "m2.PNG"], images.Select(i => i.FileName));
        Assert.Equal(["image/jpeg", "image/jpeg", "image/png", "image/png"], images.Select(i => i.ContentType));
        Assert.Equal("glass/g2.jpg"u8.ToArray(), images[1].Content);
    }

    [Fact]
    public void FromFolder_FewerFilesThanTheLimit_TakesEachOnce()
    {
        Write("b.jpeg");
        Write("a.jpg");

        Assert.Equal(["a.jpg", "b.jpeg"], ImageSet.FromFolder(_folder, limit: 200).All.Select(i => i.FileName));
    }

    [Fact]
    public void FromFolder_NoImagesOrNoFolder_RefusedNamingIt()
    {
        Write("readme.txt");

        Assert.Contains(_folder, Assert.Throws<FileNotFoundException>(() => ImageSet.FromFolder(_folder, 10)).Message);
        var missing = Path.Combine(_folder, "missing");
        Assert.Contains(missing, Assert.Throws<DirectoryNotFoundException>(() => ImageSet.FromFolder(missing, 10)).Message);
    }

    [Fact]
    public void Generated_DistinctJpegsOfTheSize_HandedOutRoundRobin()
    {
        var set = ImageSet.Generated(3, 64, 48);

        Assert.Equal(3, set.All.Select(i => Convert.ToBase64String(i.Content)).Distinct().Count());
        Assert.All(set.All, image =>
        {
            var info = Image.Identify(image.Content);
            Assert.Equal((64, 48), (info.Width, info.Height));
            Assert.Equal("image/jpeg", image.ContentType);
        });
        Assert.Equal(set.All.Concat(set.All).Select(i => i.FileName), Enumerable.Range(0, 6).Select(_ => set.Next().FileName));
    }

    /// <summary>Writes a file whose content is its relative path.</summary>
    private void Write(string relativePath)
    {
        var path = Path.Combine(_folder, relativePath);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, relativePath);
    }

    public void Dispose() => Directory.Delete(_folder, recursive: true);
}
