using System.Diagnostics;

namespace ReaperProxy.FunctionalTests.Infrastructure;

/// <summary>Bounded polling for conditions that become true asynchronously (never a fixed sleep).</summary>
public static class Eventually
{
    /// <summary>The default bound for anything the tests wait for.</summary>
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(10);

    /// <summary>Polls <paramref name="condition"/> until it holds; fails the test after <paramref name="timeout"/>.</summary>
    /// <param name="condition">What must become true.</param>
    /// <param name="what">Named in the failure.</param>
    /// <param name="timeout">The bound (default <see cref="DefaultTimeout"/>).</param>
    /// <param name="poll">Between checks (default 50 ms); shorter for a test that waits for many small steps.</param>
    public static async Task UntilAsync(Func<Task<bool>> condition, string what, TimeSpan? timeout = null, TimeSpan? poll = null)
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

            await Task.Delay(poll ?? TimeSpan.FromMilliseconds(50));
        }
    }

    /// <summary>Polls a synchronous condition.</summary>
    public static Task UntilAsync(Func<bool> condition, string what, TimeSpan? timeout = null, TimeSpan? poll = null) =>
        UntilAsync(() => Task.FromResult(condition()), what, timeout, poll);

    /// <summary>A token that cancels after <paramref name="timeout"/> (default 10 s), for single awaited operations.</summary>
    public static CancellationToken Within(TimeSpan? timeout = null) => new CancellationTokenSource(timeout ?? DefaultTimeout).Token;
}
