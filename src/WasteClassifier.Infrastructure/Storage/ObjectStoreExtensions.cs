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
                    IMinioClient Client(string endpoint, bool ssl) => new MinioClient()
                        .WithEndpoint(endpoint)
                        .WithCredentials(options.AccessKey, options.SecretKey)
                        .WithRegion(options.Region)
                        .WithSSL(ssl)
                        .WithTimeout(30_000)
                        .Build();
                    var presigner = string.IsNullOrEmpty(options.PublicEndpoint) ? null : Client(options.PublicEndpoint, options.PublicUseSsl ?? options.UseSsl);
                    var http = new HttpClient(new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.FromMinutes(2) }) { Timeout = TimeSpan.FromSeconds(30) };
                    return new MinioObjectStore(Client(options.Endpoint, options.UseSsl), options.Bucket, http, presigner);
                });
                break;
            default:
                throw new InvalidOperationException($"ObjectStore:Provider '{options.Provider}' is not supported; use filesystem or minio");
        }
        return services;
    }
}
