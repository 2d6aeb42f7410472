using System.Diagnostics;

namespace ReaperProxy.FunctionalTests.Infrastructure;

/// <summary>Bounded polling for conditions that become true asynchronously (never a fixed sleep).</summary>
public static class Eventually
{
    /// <summary>The default bound for anything the tests wait for.</summary>
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(10);

    /// <summary>Polls <paramref name="condition"/> until it holds; fails the test after <paramref name="timeout"/>.</summary>
    public static async Task UntilAsync(Func<Task<bool>> condition, string what, TimeSpan? timeout = null)
    {
        var bound = timeout ?? DefaultTimeout;
        var clock = Stopwatch.StartNew();
        Exception? last = null;
        while (true)
        {
            try
            {
                if (await condition())
                {
                    return;
                }
            }
            catch (Exception ex) when (ex is HttpRequestException or IOException or TaskCanceledException)
            {
                last = ex;
            }

            if (clock.Elapsed > bound)
            {
                Assert.Fail($"Timed out after {bound.TotalSeconds:0.#} s waiting for {what}." + (last is null ? string.Empty : $" Last error: {last.Message}"));
            }

            await Task.Delay(50);
        }
    }

    /// <summary>Polls a synchronous condition.</summary>
    public static Task UntilAsync(Func<bool> condition, string what, TimeSpan? timeout = null) =>
        UntilAsync(() => Task.FromResult(condition()), what, timeout);

    /// <summary>A token that cancels after <paramref name="timeout"/> (default 10 s), for single awaited operations.</summary>
    public static CancellationToken Within(TimeSpan? timeout = null) => new CancellationTokenSource(timeout ?? DefaultTimeout).Token;
}
