namespace WasteClassifier.Infrastructure.Storage;

/// <summary>Configuration section <c>ObjectStore</c>.</summary>
public sealed class ObjectStoreOptions
{
    public const string Section = "ObjectStore";

    /// <summary><c>filesystem</c> (embedded default, under the data folder) or <c>minio</c> (any S3-compatible server).</summary>
    public string Provider { get; set; } = ObjectStoreProviders.FileSystem;

    /// <summary>host:port of the S3 endpoint, e.g. <c>localhost:9000</c>.</summary>
    public string Endpoint { get; set; } = "localhost:9000";

    public string AccessKey { get; set; } = "";
    public string SecretKey { get; set; } = "";
    public bool UseSsl { get; set; }
    public string Region { get; set; } = "us-east-1";
    public string Bucket { get; set; } = "waste-images";

    /// <summary>
    /// host:port clients use to reach the S3 endpoint for presigned uploads, when it differs from <see cref="Endpoint"/>
    /// (e.g. the service talks to <c>minio:9000</c> inside a cluster); the signature covers the host.
    /// </summary>
    public string? PublicEndpoint { get; set; }

    /// <summary>Whether clients reach <see cref="PublicEndpoint"/> over TLS; defaults to <see cref="UseSsl"/>.</summary>
    public bool? PublicUseSsl { get; set; }

    /// <summary>Folder for the filesystem provider; defaults to <c>{DataDirectory}/objects</c>.</summary>
    public string? Root { get; set; }
}

public static class ObjectStoreProviders
{
    public const string FileSystem = "filesystem";
    public const string Minio = "minio";
}
