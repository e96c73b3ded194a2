using WasteClassifier.Infrastructure.Persistence;

namespace WasteClassifier.UnitTests.Infrastructure;

/// <summary>
/// At the migration lock's deadline the process gives up naming the holder, unless the holder let go after the last try:
/// then it takes the lock once more. The decision is tested here because making the holder let go between the try and the
/// holder query on a real server is a timing race.
/// </summary>
public sealed class MigrationLockGiveUpTests
{
    [Fact]
    public async Task HolderLetGoAfterTheLastTry_TriesOnceMoreAndKeepsTheLock()
    {
        var tries = 0;

        await DatabaseExtensions.TakeFreedLockOrGiveUpAsync(TimeSpan.FromSeconds(5), DatabaseOptions.MigrationLockTimeoutSetting, () => Task.FromResult<string?>(null),
            () => { tries++; return Task.FromResult(true); });

        Assert.Equal(1, tries);
    }

    [Fact]
    public async Task HolderLetGoButAnotherTookTheLock_GivesUp()
    {
        var error = await Assert.ThrowsAsync<MigrationLockTimeoutException>(() => DatabaseExtensions.TakeFreedLockOrGiveUpAsync(
            TimeSpan.FromSeconds(5), DatabaseOptions.MigrationLockTimeoutSetting, () => Task.FromResult<string?>(null), () => Task.FromResult(false)));

        Assert.StartsWith("Waited 5 s for the database migration lock; it is held by another process", error.Message);
    }

    [Fact]
    public async Task LockStillHeld_GivesUpNamingTheHolderWithoutTryingAgain()
    {
        var tries = 0;

        var error = await Assert.ThrowsAsync<MigrationLockTimeoutException>(() => DatabaseExtensions.TakeFreedLockOrGiveUpAsync(
            TimeSpan.FromSeconds(5), DatabaseOptions.MigrationLockTimeoutSetting, () => Task.FromResult<string?>("server process 42 (application 'stuck-replica', idle for 7 s)"),
            () => { tries++; return Task.FromResult(true); }));

        Assert.Equal(0, tries);
        Assert.StartsWith("Waited 5 s for the database migration lock; it is held by server process 42 (application 'stuck-replica', idle for 7 s); gave up waiting.", error.Message);
        Assert.Contains("raise Database:MigrationLockTimeoutSeconds (0 waits for ever)", error.Message);
    }

    [Fact]
    public async Task LockStillHeld_GivesUpNamingWhatSetTheWait()
    {
        // wastectl migrate --lock-timeout overrides the setting: the message must tell to raise the option instead.
        var error = await Assert.ThrowsAsync<MigrationLockTimeoutException>(() => DatabaseExtensions.TakeFreedLockOrGiveUpAsync(
            TimeSpan.FromSeconds(5), "--lock-timeout", () => Task.FromResult<string?>("server process 42"), () => Task.FromResult(true)));

        Assert.Contains("raise --lock-timeout (0 waits for ever)", error.Message);
        Assert.DoesNotContain("MigrationLockTimeoutSeconds", error.Message);
    }
}
