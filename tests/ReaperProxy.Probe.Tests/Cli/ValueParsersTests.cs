using ReaperProxy.Probe.Checks;
using ReaperProxy.Probe.Cli;

namespace ReaperProxy.Probe.Tests.Cli;

public sealed class ValueParsersTests
{
    [Theory]
    [InlineData("120s", 120_000)]
    [InlineData("500ms", 500)]
    [InlineData("2m", 120_000)]
    [InlineData("1.5s", 1_500)]
    [InlineData("1h", 3_600_000)]
    [InlineData("00:00:15", 15_000)]
    public void Durations_take_a_unit(string text, double milliseconds)
    {
        Assert.Equal(TimeSpan.FromMilliseconds(milliseconds), ValueParsers.Duration(text, out var error));
        Assert.Null(error);
    }

    [Theory]
    [InlineData("10", "has no unit")]
    [InlineData("0s", "more than 0")]
    [InlineData("2d", "not a duration")]
    [InlineData("25h", "at most 24h")]
    public void Bad_durations_say_why(string text, string why)
    {
        Assert.Null(ValueParsers.Duration(text, out var error));
        Assert.Contains(why, error);
    }

    [Theory]
    [InlineData("65536", 65536)]
    [InlineData("64k", 65536)]
    [InlineData("2KiB", 2048)]
    [InlineData("1m", 1048576)]
    public void Sizes_take_k_and_m_as_binary_units(string text, int bytes) => Assert.Equal(bytes, ValueParsers.Size(text, out _));

    [Fact]
    public void Percentiles_are_nearest_rank()
    {
        var sorted = Enumerable.Range(1, 10).Select(i => TimeSpan.FromMilliseconds(i)).ToList();

        Assert.Equal(TimeSpan.FromMilliseconds(5), PingAnswerCheck.Percentile(sorted, 0.5));
        Assert.Equal(TimeSpan.FromMilliseconds(10), PingAnswerCheck.Percentile(sorted, 0.99));
        Assert.Null(PingAnswerCheck.Percentile([], 0.5));
    }
}
