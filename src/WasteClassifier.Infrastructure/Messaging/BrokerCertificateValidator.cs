using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.Logging;
using WasteClassifier.Infrastructure.Hosting;

namespace WasteClassifier.Infrastructure.Messaging;

/// <summary>
/// Checks RabbitMQ's certificate on a TLS connection: accepted when the system trusts it, or when its chain ends at a CA of
/// Messaging:RabbitMq:CaCertificatePath; and only when it carries the expected server name. Nothing else is ever accepted,
/// and each refusal is logged as an error that says what was wrong (the client's own exception says only "rejected"):
/// the first one, and one with a different reason, at once; the same one again at most every <see cref="RepeatLogInterval"/>,
/// with how many went unlogged meanwhile. Only the last reason is kept, and an accepted certificate clears it: refusals
/// that alternate reasons, or alternate with acceptances (two brokers behind one name), are each logged.
/// </summary>
public sealed class BrokerCertificateValidator(string serverName, X509Certificate2Collection trustedCas, string? caPath, ILogger logger,
    TimeProvider? clock = null)
{
    /// <summary>
    /// How often a refusal for the same reason as the last is logged again: the bus reconnects every few seconds while the
    /// certificate is refused, and an error per try buried everything else in the log.
    /// </summary>
    public static readonly TimeSpan RepeatLogInterval = TimeSpan.FromMinutes(5);

    /// <summary>Server authentication, the use the system's own check demands of a server's certificate.</summary>
    private static readonly Oid ServerAuthentication = new("1.3.6.1.5.5.7.3.1");

    // Connections may be checked on several threads at once: RepeatedFailureLog takes care of that.
    private readonly RepeatedFailureLog _refusals = new(RepeatLogInterval, clock);

    public bool Validate(object sender, X509Certificate? certificate, X509Chain? chain, SslPolicyErrors errors)
    {
        if (errors == SslPolicyErrors.None) return Accepted();
        if (certificate is null || errors.HasFlag(SslPolicyErrors.RemoteCertificateNotAvailable))
            return Refused("RabbitMQ TLS: the broker sent no certificate; the connection is refused");
        using var presented = new X509Certificate2(certificate);
        if (errors.HasFlag(SslPolicyErrors.RemoteCertificateNameMismatch))
        {
            // A trusted CA vouches only for the names it signed: a name that does not match is refused whoever signed it.
            return Refused("RabbitMQ TLS: the broker's certificate does not carry the name '{ServerName}' (it is for {Names}); " +
                "the connection is refused. Set Messaging:RabbitMq:ServerName to a name in the certificate, or connect by that name",
                serverName, Names(presented));
        }
        // Only the chain is left in question: it may end at the CA this deployment trusts.
        var problem = ChainProblem(presented, chain);
        if (problem is null) return Accepted();
        return Refused("RabbitMQ TLS: the broker's certificate (subject '{Subject}', issued by '{Issuer}') is not trusted: {Problem}; " +
            "the connection is refused. {Hint}", presented.Subject, presented.Issuer, problem,
            caPath is null
                ? "Set Messaging:RabbitMq:CaCertificatePath to the PEM file of the CA that signed it, or add that CA to the system's trust store"
                : $"Messaging:RabbitMq:CaCertificatePath '{caPath}' holds no CA it chains to");
    }

    /// <summary>A certificate passed: a refusal after it is news again, logged at once.</summary>
    private bool Accepted()
    {
        _refusals.Succeeded();
        return true;
    }

    /// <summary>
    /// Logs a refusal, its reason being the message with its values: at once when it differs from the last refusal's, else
    /// only once <see cref="RepeatLogInterval"/> has passed since that reason was last logged, with the count left unlogged.
    /// </summary>
    private bool Refused(string message, params object?[] values)
    {
        var reason = string.Join("\n", values.Prepend(message));
        if (!_refusals.Failed(reason, out var unlogged, out var since)) return false;
#pragma warning disable CA2254 // One of the fixed templates above, with its values.
        if (unlogged == 0) logger.LogError(message, values);
        else logger.LogError(message + " (refused {Unlogged} more time(s) for this reason, unlogged, in the {Minutes:0} minutes since it was last logged)",
            [.. values, unlogged, since.TotalMinutes]);
#pragma warning restore CA2254
        return false;
    }

    /// <summary>Why <paramref name="presented"/> does not chain to a CA of <see cref="trustedCas"/>, or null when it does.</summary>
    private string? ChainProblem(X509Certificate2 presented, X509Chain? systemChain)
    {
        var systemProblem = systemChain is null ? "no chain could be built" : Describe(systemChain.ChainStatus);
        if (trustedCas.Count == 0) return systemProblem;
        using var custom = new X509Chain();
        custom.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        custom.ChainPolicy.CustomTrustStore.AddRange(trustedCas);
        // As the system's check (SslStream's default): no revocation lookup; a private CA rarely publishes a list.
        custom.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        custom.ChainPolicy.ApplicationPolicy.Add(ServerAuthentication);
        // Intermediates the broker sent along. Each ChainElements read hands out new certificates this method owns.
        var copies = new List<X509Certificate2>();
        try
        {
            if (systemChain is not null)
            {
                custom.ChainPolicy.ExtraStore.AddRange(systemChain.ChainPolicy.ExtraStore);
                foreach (var element in systemChain.ChainElements)
                {
                    var copy = element.Certificate;
                    copies.Add(copy);
                    custom.ChainPolicy.ExtraStore.Add(copy);
                }
            }
            var built = custom.Build(presented);
            foreach (var element in custom.ChainElements) copies.Add(element.Certificate);
            return built ? null : Describe(custom.ChainStatus);
        }
        finally
        {
            foreach (var certificate in copies) certificate.Dispose();
        }
    }

    private static string Describe(X509ChainStatus[] status) =>
        status.Length == 0 ? "the chain is not valid" : string.Join("; ", status.Select(s => $"{s.Status} ({s.StatusInformation.Trim()})"));

    /// <summary>The DNS names and addresses the certificate is for (subject alternative names), else its subject.</summary>
    private static string Names(X509Certificate2 certificate)
    {
        var alternative = certificate.Extensions.OfType<X509SubjectAlternativeNameExtension>().FirstOrDefault();
        var names = alternative is null
            ? []
            : alternative.EnumerateDnsNames().Concat(alternative.EnumerateIPAddresses().Select(a => a.ToString())).ToList();
        return names.Count > 0 ? string.Join(", ", names.Select(n => $"'{n}'")) : $"subject '{certificate.Subject}'";
    }
}
