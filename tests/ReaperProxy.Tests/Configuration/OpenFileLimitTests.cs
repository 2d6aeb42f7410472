using ReaperProxy.Configuration;

namespace ReaperProxy.Tests.Configuration;

public class OpenFileLimitTests
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
        Assert.Equal(expected, OpenFileLimit.MaxConnectionsFor(limit));

    [Fact]
    public void The_soft_open_file_limit_is_read_from_proc_limits()
    {
        const string Limits = """
            Limit                     Soft Limit           Hard Limit           Units
            Max cpu time              unlimited            unlimited            seconds
            Max open files            20000                40000                files
            Max locked memory         8388608              8388608              bytes
            """;

        Assert.Equal(20_000, OpenFileLimit.Parse(Limits));
        Assert.Null(OpenFileLimit.Parse(Limits.Replace("20000    ", "unlimited")));
        Assert.Null(OpenFileLimit.Parse("Max cpu time  unlimited  unlimited  seconds"));
    }

    [Fact]
    public void This_process_reports_its_limit_on_Linux()
    {
        if (!OperatingSystem.IsLinux())
        {
            Assert.Null(OpenFileLimit.Read());
            return;
        }

        var limit = OpenFileLimit.Read();
        Assert.NotNull(limit);
        Assert.Equal(OpenFileLimit.MaxConnectionsFor(limit), OpenFileLimit.AutomaticMaxConnections);
    }
}
