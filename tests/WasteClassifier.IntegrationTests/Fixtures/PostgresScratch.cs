using Microsoft.EntityFrameworkCore.Diagnostics;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using WasteClassifier.Api.Submissions;
using WasteClassifier.Infrastructure.Persistence;
using WasteClassifier.Infrastructure.Storage;

namespace WasteClassifier.IntegrationTests.Fixtures;

/// <summary>
/// For tests that build the API's services by hand on the real PostgreSQL: a fresh database and a folder object store,
/// both removed afterwards, and the small images they upload.
/// </summary>
public static class PostgresScratch
{
    /// <summary>Runs <paramref name="test"/> on a fresh PostgreSQL database, every context of it with <paramref name="interceptor"/>.</summary>
    public static async Task WithDatabaseAsync(string name, IInterceptor interceptor, Func<Func<ClassifierDbContext>, FileSystemObjectStore, Task> test)
    {
        var root = Directory.CreateTempSubdirectory($"{name}-");
        try
        {
            var store = new FileSystemObjectStore(root.FullName);
            await ProviderDatabases.WithDatabaseAsync(DatabaseProviders.Postgres, name, newContext => test(newContext, store), interceptor);
        }
        finally
        {
            root.Delete(recursive: true);
        }
    }

    /// <summary>A 16×16 PNG of one colour: another <paramref name="shade"/>, other bytes.</summary>
    public static byte[] Png(byte shade)
    {
        using var image = new Image<Rgb24>(16, 16, new Rgb24(shade, 90, 200));
        using var bytes = new MemoryStream();
        image.SaveAsPng(bytes);
        return bytes.ToArray();
    }

    /// <summary>The request's file at <paramref name="index"/>, named by it.</summary>
    public static UploadedImage Upload(int index, byte[] bytes) => new(index, $"{index}.png", "image/png", bytes.Length, bytes);
}
