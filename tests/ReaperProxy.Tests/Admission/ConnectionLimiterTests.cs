using Microsoft.Extensions.Time.Testing;
using ReaperProxy.Admission;

namespace ReaperProxy.Tests.Admission;

public class ConnectionLimiterTests
{
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
