using Xunit.Abstractions;

namespace ReaperProxy.Tests.Framing;

/// <summary>
/// Property-style runs over seeded <see cref="Random"/>s. The seeds are fixed so the suite is stable;
/// <c>REAPER_TEST_SEED</c> picks another starting seed, and a failure names the seed that replays it.
/// </summary>
internal static class Seeded
{
    public static int BaseSeed =>
        int.TryParse(Environment.GetEnvironmentVariable("REAPER_TEST_SEED"), out var seed) ? seed : 20_240_611;

    public static void Run(int iterations, ITestOutputHelper output, Action<Random, int> body) =>
        RunAsync(iterations, output, (random, seed) =>
        {
            body(random, seed);
            return Task.CompletedTask;
        }).GetAwaiter().GetResult();

    /// <summary>Runs <paramref name="body"/> with a fresh <c>Random(seed)</c> for each of the seeds in turn.</summary>
    public static async Task RunAsync(int iterations, ITestOutputHelper output, Func<Random, int, Task> body)
    {
        var first = BaseSeed;
        for (var i = 0; i < iterations; i++)
        {
            var seed = first + i;
            try
            {
                await body(new Random(seed), seed);
            }
            catch (Exception ex)
            {
                output.WriteLine($"FAILED with seed {seed}; REAPER_TEST_SEED={seed} replays it as the first iteration");
                throw new InvalidOperationException($"seed {seed}: {ex.Message}", ex);
            }
        }
    }
}
