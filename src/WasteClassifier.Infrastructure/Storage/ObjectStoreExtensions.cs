using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Minio;
using WasteClassifier.Infrastructure.Hosting;

namespace WasteClassifier.Infrastructure.Storage;

public static class ObjectStoreExtensions
{
    public static IServiceCollection AddClassifierObjectStore(this IServiceCollection services, IConfiguration configuration)
    {
        var options = configuration.GetSection(ObjectStoreOptions.Section).Get<ObjectStoreOptions>() ?? new ObjectStoreOptions();
        services.AddSingleton(options);
        switch (options.Provider.ToLowerInvariant())
        {
            case ObjectStoreProviders.FileSystem:
                var root = options.Root ?? Path.Combine(ServiceOptions.From(configuration).ResolvedDataDirectory, "objects");
                services.AddSingleton<IObjectStore>(new FileSystemObjectStore(Path.Combine(root, options.Bucket)));
                break;
            case ObjectStoreProviders.Minio:
                services.AddSingleton<IObjectStore>(_ =>
                {
                    var client = new MinioClient()
                        .WithEndpoint(options.Endpoint)
                        .WithCredentials(options.AccessKey, options.SecretKey)
                        .WithRegion(options.Region)
                        .WithSSL(options.UseSsl)
                        .WithTimeout(30_000)
                        .Build();
                    return new MinioObjectStore(client, options.Bucket);
                });
                break;
            default:
                throw new InvalidOperationException($"ObjectStore:Provider '{options.Provider}' is not supported; use filesystem or minio");
        }
        return services;
    }
}
