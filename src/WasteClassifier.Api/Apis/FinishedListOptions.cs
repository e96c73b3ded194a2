namespace WasteClassifier.Api.Apis;

/// <summary>
/// <c>Api:FinishedSettleSeconds</c> (default 60): how long a finished row waits before <c>GET /v1/classifications/finished</c>
/// lists it. A worker stamps <c>completed_at</c> with its own clock before its batch's save, which EF Core and Npgsql may retry
/// for tens of seconds, so a row can become visible after a later-stamped one that a client's cursor has already passed.
/// A row is missed only if its save commits more than this after its stamp, or its worker's clock is behind the API's by
/// more: size it above the database's retry budget, and keep the clocks NTP-synced.
/// </summary>
public sealed record FinishedListOptions(TimeSpan Settle)
{
    public const string SettleSecondsKey = "Api:FinishedSettleSeconds";
    public const int DefaultSettleSeconds = 60;

    public static FinishedListOptions From(IConfiguration configuration)
    {
        var seconds = configuration.GetValue(SettleSecondsKey, DefaultSettleSeconds);
        if (seconds < 0) throw new InvalidOperationException($"{SettleSecondsKey} must be 0 or more seconds; got {seconds}");
        return new FinishedListOptions(TimeSpan.FromSeconds(seconds));
    }
}
