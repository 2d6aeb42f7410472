using Microsoft.Extensions.Time.Testing;
using ReaperProxy.Admission;

namespace ReaperProxy.Tests.Admission;

public class ConnectionLimiterTests
{
    [Theory]
    [InlineData(20_000L, 9_500)]       // this machine's limit: 1,000 in reserve
    [InlineData(1_048_576L, 498_074)]  // a common container limit: 5% in reserve
    [InlineData(4_096L, 1_792)]        // small limits keep at least 512 in reserve
    [InlineData(1_024L, 256)]
    [InlineData(400L, 1)]              // never below one
    [InlineData(null, int.MaxValue)]   // unknown or unlimited: no cap
    [InlineData(long.MaxValue, int.MaxValue)]
    public void The_automatic_cap_leaves_two_descriptors_per_WebSocket_after_a_reserve(long? limit, int expected) =>
        Assert.Equal(expected, ConnectionLimiter.FromOpenFileLimit(limit));

    [Fact]
    public void The_soft_open_file_limit_is_read_from_proc_limits()
    {
        const string Limits = """
            Limit                     Soft Limit           Hard Limit           Units
            Max cpu time              unlimited            unlimited            seconds
            Max open files            20000                40000                files
            Max locked memory         8388608              8388608              bytes
            """;

        Assert.Equal(20_000, ConnectionLimiter.ParseOpenFileLimit(Limits));
        Assert.Null(ConnectionLimiter.ParseOpenFileLimit(Limits.Replace("20000    ", "unlimited")));
        Assert.Null(ConnectionLimiter.ParseOpenFileLimit("Max cpu time  unlimited  unlimited  seconds"));
    }

    [Fact]
    public void This_process_reports_its_limit_on_Linux()
    {
        if (!OperatingSystem.IsLinux())
        {
            Assert.Null(ConnectionLimiter.ReadOpenFileLimit());
            return;
        }

        var limit = ConnectionLimiter.ReadOpenFileLimit();
        Assert.NotNull(limit);
        Assert.Equal(ConnectionLimiter.FromOpenFileLimit(limit), ConnectionLimiter.Automatic);
    }

    [Fact]
    public void Slots_are_taken_up_to_the_cap_and_freed_on_exit()
    {
        var limiter = new ConnectionLimiter(new FakeTimeProvider());

        Assert.True(limiter.TryEnter(2));
        Assert.True(limiter.TryEnter(2));
        Assert.False(limiter.TryEnter(2));
        Assert.Equal(2, limiter.Open);

        limiter.Exit();
        Assert.True(limiter.TryEnter(2));
        Assert.False(limiter.TryEnter(2));

        // A cap lowered by a reload refuses until enough connections ended; none is cut.
        Assert.False(limiter.TryEnter(1));
        limiter.Exit();
        limiter.Exit();
        Assert.True(limiter.TryEnter(1));
    }

    [Fact]
    public void Concurrent_entries_never_exceed_the_cap()
    {
        var limiter = new ConnectionLimiter(new FakeTimeProvider());
        var admitted = 0;

        Parallel.For(0, 10_000, _ =>
        {
            if (limiter.TryEnter(100))
            {
                Interlocked.Increment(ref admitted);
            }
        });

        Assert.Equal(100, admitted);
        Assert.Equal(100, limiter.Open);
    }

    [Fact]
    public void Refusals_are_logged_at_most_once_per_10_seconds_with_the_count_since_the_last_line()
    {
        var time = new FakeTimeProvider();
        var limiter = new ConnectionLimiter(time);
        Assert.True(limiter.TryEnter(1));

        Assert.False(limiter.TryEnter(1));
        Assert.True(limiter.ShouldLog(out var first));
        Assert.Equal(1, first);

        for (var i = 0; i < 5; i++)
        {
            Assert.False(limiter.TryEnter(1));
            Assert.False(limiter.ShouldLog(out _));
        }

        time.Advance(TimeSpan.FromSeconds(9.9));
        Assert.False(limiter.TryEnter(1));
        Assert.False(limiter.ShouldLog(out _));

        time.Advance(TimeSpan.FromSeconds(0.2));
        Assert.False(limiter.TryEnter(1));
        Assert.True(limiter.ShouldLog(out var second));
        Assert.Equal(7, second);
    }
}
